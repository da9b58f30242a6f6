// The notesync service worker. The server fills in VERSION (a hash of the
// files listed in PRECACHE) and PRECACHE when it serves /sw.js, so a new
// build is a new service worker (see src/server/pwa.rs and docs/pwa.md).
//
// - install: precache the app shell for this version, straight from the
//   server (not the HTTP cache). The first install takes control at once; an
//   update waits until the page asks, after the person chose to reload.
// - activate: delete every older shell cache.
// - navigations: network first (4 s), then the cached page, then the shell.
// - shell files: network first, then the cache, so an online page always
//   gets one consistent build and an offline one the cached build.
// - /api/ (server functions, sync, the poke stream) is never cached.
const VERSION = '__NOTESYNC_VERSION__';
const PRECACHE = __NOTESYNC_PRECACHE__;
const CACHE_PREFIX = 'notesync-shell-';
const CACHE = CACHE_PREFIX + VERSION;
const NAVIGATION_TIMEOUT_MS = 4000;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(
        PRECACHE.map((path) => new Request(path, { cache: 'reload', credentials: 'same-origin' })),
      );
      if (!self.registration.active) {
        await self.skipWaiting();
      }
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE) {
          await caches.delete(name);
        }
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') {
    self.skipWaiting();
  } else if (event.data === 'version' && event.ports[0]) {
    event.ports[0].postMessage(VERSION);
  }
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith('/api/')) return;
  if (request.mode === 'navigate') {
    event.respondWith(navigation(request, url));
  } else if (PRECACHE.includes(url.pathname)) {
    event.respondWith(shellFile(request, url));
  }
});

async function cached(path) {
  const cache = await caches.open(CACHE);
  return cache.match(path);
}

async function navigation(request, url) {
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timeout')), NAVIGATION_TIMEOUT_MS);
      fetch(request).then(
        (response) => {
          clearTimeout(timer);
          resolve(response);
        },
        (error) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  } catch (error) {
    return (await cached(url.pathname)) ?? (await cached('/')) ?? Response.error();
  }
}

async function shellFile(request, url) {
  try {
    const response = await fetch(request);
    if (response.ok) return response;
    return (await cached(url.pathname)) ?? response;
  } catch (error) {
    const copy = await cached(url.pathname);
    if (copy) return copy;
    throw error;
  }
}
