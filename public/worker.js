// The sync worker: a module worker that runs the same wasm bundle as the page.
// cargo-leptos (and scripts/build) name the wasm <name>.wasm, so its path is
// given explicitly. The page names the signed-in user, whose database it
// syncs, in the worker's name: unlike a query string, the name survives the
// script being served from the service worker's cache.
import init, { worker_main } from '/pkg/notesync.js';

await init({ module_or_path: '/pkg/notesync.wasm' });
worker_main(self.name ?? '');
