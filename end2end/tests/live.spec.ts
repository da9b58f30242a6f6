// The live connection stays up and comes back: heartbeats and `bye` reach
// the browser (an event without data is never dispatched), and a server
// stopped with SIGTERM with tabs open exits at once and is found again when
// it is back. Each test runs a server of its own with short timings.
import { expect, test, type Request } from '@playwright/test';
import { device, type NotesApp } from '../fixtures/app';
import { OwnServer } from '../fixtures/server';

function live(app: NotesApp) {
  return app.page.getByTestId('live-status');
}

/** Every request of a context to the event stream, with when it started and ended. */
function watchStreams() {
  const opened: number[] = [];
  const ended: number[] = [];
  const states: string[] = [];
  return {
    opened,
    ended,
    states,
    watch: (request: Request) => {
      if (new URL(request.url()).pathname === '/api/events') opened.push(Date.now());
    },
    done: (request: Request) => {
      if (new URL(request.url()).pathname === '/api/events') ended.push(Date.now());
    },
  };
}

test('an idle tab keeps one connection: heartbeats reach the browser', async ({ browser }) => {
  // A browser takes three missed heartbeats for a dead connection; before
  // heartbeats carried data it never saw one and reconnected every 40 s.
  test.setTimeout(120_000);
  const server = new OwnServer(3202, ['--heartbeat-ms', '1000']);
  await server.start();
  try {
    const streams = watchStreams();
    const a = await device(browser, {
      baseURL: server.baseURL,
      watch: (context) => {
        context.on('request', streams.watch);
        context.on('requestfinished', streams.done);
        context.on('requestfailed', streams.done);
      },
    });
    await expect(live(a.app)).toHaveAttribute('data-state', 'connected');
    const before = streams.opened.length;
    const seen = new Set<string>();
    // 45 s idle, watching the status every half second.
    const until = Date.now() + 45_000;
    while (Date.now() < until) {
      seen.add((await live(a.app).getAttribute('data-state')) ?? '');
      await a.app.page.waitForTimeout(500);
    }
    expect(streams.opened.length, 'no reconnection while idle').toBe(before);
    expect([...seen]).toEqual(['connected']);
  } finally {
    await server.dispose();
  }
});

test('a stream the server ends with bye reconnects at once', async ({ browser }) => {
  test.setTimeout(60_000);
  const server = new OwnServer(3203, ['--stream-max-secs', '2']);
  await server.start();
  try {
    const streams = watchStreams();
    const a = await device(browser, {
      baseURL: server.baseURL,
      watch: (context) => {
        context.on('request', streams.watch);
        context.on('requestfinished', streams.done);
        context.on('requestfailed', streams.done);
      },
    });
    await expect(live(a.app)).toHaveAttribute('data-state', 'connected');
    // Each stream lasts its 2 s and the next one opens right after it,
    // without the error path's backoff, which shows "reconnecting in N s".
    const seen = new Set<string>();
    const until = Date.now() + 9_000;
    while (Date.now() < until) {
      seen.add((await live(a.app).getAttribute('data-state')) ?? '');
      await a.app.page.waitForTimeout(100);
    }
    const gaps = streams.opened.slice(1).map((at, i) => at - streams.ended[i]);
    console.log(`streams opened ${streams.opened.length}, gaps ${gaps.join(', ')} ms, states ${[...seen].join(', ')}`);
    expect(streams.opened.length).toBeGreaterThanOrEqual(4);
    expect([...seen].sort()).not.toContain('retrying');
    await expect(live(a.app)).toHaveAttribute('data-state', 'connected');
  } finally {
    await server.dispose();
  }
});

test('SIGTERM with tabs open stops the server at once, and the tabs are live again when it is back', async ({
  browser,
}) => {
  test.setTimeout(90_000);
  const server = new OwnServer(3204);
  await server.start();
  try {
    const a = await device(browser, { baseURL: server.baseURL });
    const second = await a.context.newPage();
    await second.goto('/');
    await a.app.create('Before the restart', 'kept');
    await a.app.expectSynced();
    await expect(live(a.app)).toHaveAttribute('data-state', 'connected');

    const took = await server.terminate();
    expect(took, 'the server exits within 2 s with a stream open').toBeLessThan(2_000);
    await expect(live(a.app)).not.toHaveAttribute('data-state', 'connected');

    await server.start();
    await expect(live(a.app)).toHaveAttribute('data-state', 'connected', { timeout: 30_000 });
    // Live means synced through the restarted server: an edit arrives.
    await a.app.create('After the restart', 'synced');
    await a.app.expectSynced();
  } finally {
    await server.dispose();
  }
});
