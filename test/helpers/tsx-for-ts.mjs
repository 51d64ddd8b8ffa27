// tap's `node-arg`. The suite runs compiled (dist/test/**/*.test.js, no
// loader); a test file given as TypeScript during development
// (`npx tap test/x.test.ts`) gets tsx, as `--import=tsx` would.
if (/\.[cm]?ts$/.test(process.argv[1] ?? '')) await import('tsx');
