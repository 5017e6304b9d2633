// The layers of src/ (docs: /work STYLE "Layers, one direction"), checked on every `npm run lint`.
// A module may import only its own layer or a lower one, and no circle is allowed anywhere.
// Lowest first: errors.ts, ip.ts, native.ts, util/ (parsers of plain values) → netlink → model (+ reconcile/state.ts, the Plan and
// ObservedState vocabulary that reconcile produces and kernel consumes) → translate, kernel →
// reconcile, sources → agent → cli.
const layer = (name, path, mayImport) => ({
  name: `${name}-imports-only-lower-layers`,
  comment: `${name} may import only: ${mayImport.join(', ')}`,
  severity: 'error',
  from: { path },
  to: { path: '^src/', pathNot: [path, ...mayImport] },
});

const BASE = ['^src/errors\\.ts$', '^src/ip\\.ts$', '^src/native\\.ts$', '^src/util/'];
const NETLINK = '^src/netlink/';
const MODEL = ['^src/model/', '^src/reconcile/state\\.ts$'];

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    { name: 'src-never-imports-tests-or-tools', severity: 'error', from: { path: '^src/' }, to: { path: '^(test|bench|scripts)/' } },
    layer('base', '^src/((errors|ip|native)\\.ts$|util/)', BASE),
    layer('netlink', NETLINK, [...BASE]),
    layer('model', '^src/(model/|reconcile/state\\.ts$)', [...BASE, NETLINK]),
    layer('translate', '^src/translate/', [...BASE, NETLINK, ...MODEL]),
    layer('kernel', '^src/kernel/', [...BASE, NETLINK, ...MODEL]),
    layer('reconcile', '^src/reconcile/', [...BASE, NETLINK, ...MODEL, '^src/kernel/']),
    layer('sources', '^src/sources/', [...BASE, NETLINK, ...MODEL, '^src/translate/']),
    layer('agent', '^src/agent/', [...BASE, NETLINK, ...MODEL, '^src/(translate|kernel|reconcile|sources)/']),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs'] },
  },
};
