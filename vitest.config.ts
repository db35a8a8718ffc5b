import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure TypeScript, no external processes) and `integration` (real
// spire-server, spire-agent and opa started by the rig under test/rig). Integration files
// each start their own SPIRE and run in parallel worker processes.
export default defineConfig({
  test: {
    reporters: ['default', ['json', { outputFile: '.vitest-results/results.json' }]],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          pool: 'forks',
          testTimeout: 20_000,
          setupFiles: ['test/setup/reflect-metadata.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          pool: 'forks',
          testTimeout: 120_000,
          hookTimeout: 120_000,
          setupFiles: ['test/setup/reflect-metadata.ts'],
        },
      },
    ],
  },
});
