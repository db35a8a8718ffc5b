// Command interop-tls is a SPIFFE mTLS peer written with go-spiffe v2 (spiffetls/tlsconfig),
// used by the @tachikoma/identity tests as "a peer nobody here wrote". It takes its SVID from
// the Workload API, choosing it by hint, and authorizes the other side by SPIFFE ID.
//
//	interop-tls server <workload-addr> <hint> <allowed-client-id>
//	    serves HTTPS on 127.0.0.1 (random port); prints "LISTENING <port>" once ready;
//	    answers "hello <client-id>"; prints "REFUSED <error>" for each refused handshake
//	interop-tls client <workload-addr> <hint> <expected-server-id> <url>
//	    one GET; prints the body and exits 0, or prints the error and exits 1
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func source(ctx context.Context, addr, hint string) *workloadapi.X509Source {
	picker := func(svids []*x509svid.SVID) *x509svid.SVID {
		for _, s := range svids {
			if s.Hint == hint {
				return s
			}
		}
		return nil
	}
	src, err := workloadapi.NewX509Source(ctx,
		workloadapi.WithClientOptions(workloadapi.WithAddr(addr)),
		workloadapi.WithDefaultX509SVIDPicker(picker))
	if err != nil {
		fail("x509 source: %v", err)
	}
	if svid, err := src.GetX509SVID(); err != nil || svid == nil {
		fail("no SVID with hint %q: %v", hint, err)
	}
	return src
}

func main() {
	if len(os.Args) < 5 {
		fail("usage: interop-tls server|client <workload-addr> <hint> <peer-id> [url]")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	src := source(ctx, os.Args[2], os.Args[3])
	defer src.Close()
	peer, err := spiffeid.FromString(os.Args[4])
	if err != nil {
		fail("peer id: %v", err)
	}
	switch os.Args[1] {
	case "server":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fail("listen: %v", err)
		}
		srv := &http.Server{
			TLSConfig: tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeID(peer)),
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
				if err != nil {
					http.Error(w, err.Error(), http.StatusUnauthorized)
					return
				}
				fmt.Fprintf(w, "hello %s", id)
			}),
			ErrorLog: log.New(refusalWriter{}, "", 0),
		}
		fmt.Printf("LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port)
		if err := srv.ServeTLS(ln, "", ""); err != nil {
			fail("serve: %v", err)
		}
	case "client":
		if len(os.Args) < 6 {
			fail("client needs a url")
		}
		client := &http.Client{
			Timeout:   20 * time.Second,
			Transport: &http.Transport{TLSClientConfig: tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(peer))},
		}
		res, err := client.Get(os.Args[5])
		if err != nil {
			fail("%v", err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			fail("status %d: %s", res.StatusCode, body)
		}
		fmt.Print(string(body))
	default:
		fail("unknown mode %q", os.Args[1])
	}
}

// refusalWriter prints the server's handshake errors on stdout, one line each.
type refusalWriter struct{}

func (refusalWriter) Write(p []byte) (int, error) {
	fmt.Printf("REFUSED %s", p)
	return len(p), nil
}
