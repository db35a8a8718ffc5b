// Command interop is a Workload API client written with go-spiffe v2, used by the tests and
// benchmarks of @tachikoma/identity as "a client nobody here wrote".
//
//	interop fetch-x509 <addr>          one FetchX509Context; prints JSON facts about it
//	interop bench-x509 <addr> <n>      n sequential FetchX509Context calls on one client;
//	                                   prints JSON with each call's latency in microseconds
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

type svidFacts struct {
	SpiffeID  string `json:"spiffeId"`
	Hint      string `json:"hint"`
	Serial    string `json:"serial"`
	NotAfter  string `json:"notAfter"`
	ChainLen  int    `json:"chainLength"`
	HasKey    bool   `json:"hasKey"`
	IssuerDER string `json:"issuerSubject"`
}

type fetchResult struct {
	SVIDs        []svidFacts `json:"svids"`
	TrustDomains []string    `json:"trustDomains"`
}

type benchResult struct {
	N        int     `json:"n"`
	Micros   []int64 `json:"micros"`
	SpiffeID string  `json:"spiffeId"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: interop fetch-x509|bench-x509 <addr> [n]")
	}
	mode, addr := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		fail("workloadapi.New: %v", err)
	}
	defer client.Close()

	switch mode {
	case "fetch-x509":
		callCtx, callCancel := context.WithTimeout(ctx, 20*time.Second)
		defer callCancel()
		x509ctx, err := client.FetchX509Context(callCtx)
		if err != nil {
			fail("FetchX509Context: %v", err)
		}
		out := fetchResult{}
		for _, s := range x509ctx.SVIDs {
			leaf := s.Certificates[0]
			out.SVIDs = append(out.SVIDs, svidFacts{
				SpiffeID:  s.ID.String(),
				Hint:      s.Hint,
				Serial:    hex.EncodeToString(leaf.SerialNumber.Bytes()),
				NotAfter:  leaf.NotAfter.UTC().Format(time.RFC3339),
				ChainLen:  len(s.Certificates),
				HasKey:    s.PrivateKey != nil,
				IssuerDER: leaf.Issuer.String(),
			})
		}
		for _, b := range x509ctx.Bundles.Bundles() {
			out.TrustDomains = append(out.TrustDomains, b.TrustDomain().Name())
		}
		sort.Strings(out.TrustDomains)
		_ = json.NewEncoder(os.Stdout).Encode(out)
	case "bench-x509":
		if len(os.Args) < 4 {
			fail("bench-x509 needs a call count")
		}
		n, err := strconv.Atoi(os.Args[3])
		if err != nil || n <= 0 {
			fail("bad call count %q", os.Args[3])
		}
		res := benchResult{N: n}
		// One warm-up call, as the TypeScript side does, so both measure a connected client.
		first, err := client.FetchX509Context(ctx)
		if err != nil {
			fail("FetchX509Context: %v", err)
		}
		res.SpiffeID = first.SVIDs[0].ID.String()
		for i := 0; i < n; i++ {
			start := time.Now()
			if _, err := client.FetchX509Context(ctx); err != nil {
				fail("FetchX509Context #%d: %v", i, err)
			}
			res.Micros = append(res.Micros, time.Since(start).Microseconds())
		}
		_ = json.NewEncoder(os.Stdout).Encode(res)
	default:
		fail("unknown mode %q", mode)
	}
}
