// Compiled with `tsc --strict --noEmit`: `tokenrelay/testing` in a user's
// test suite (node:test, Vitest, Jest all read the same).
import {
  startReferenceServer, findServerBinary, ReferenceServer, ServerNotFoundError, ENV_VAR,
  type ReferenceServerOptions,
} from 'tokenrelay/testing';

const options: ReferenceServerOptions = {
  binary: findServerBinary(),
  args: ['--scripted-pace-ms', '0'],
  credits: 10,
  env: { RUST_BACKTRACE: '1' },
  startupTimeoutMs: 10_000,
};

export async function suite(): Promise<string> {
  const server: ReferenceServer = await startReferenceServer(options);
  const urls: [string, string] = [server.httpUrl, server.wsUrl];
  const key: string = server.orgKey;
  const lines: string[] = server.log;
  const restarted: ReferenceServer = await server.restart({ graceful: false });
  await restarted.stop({ timeoutMs: 5000 });
  // @ts-expect-error the URLs are read-only
  server.httpUrl = 'http://elsewhere';
  // @ts-expect-error args are strings
  await startReferenceServer({ args: [1] });
  try {
    findServerBinary('/nowhere');
  } catch (e) {
    if (e instanceof ServerNotFoundError) return e.code;
  }
  return `${urls.join(' ')} ${key} ${lines.length} ${ENV_VAR} ${server.running}`;
}
