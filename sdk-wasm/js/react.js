// `tokenrelay/react`: hooks over the package's Client for React 18+. The
// connection lives as long as the component (its AbortSignal is aborted
// on unmount or when the context changes, which stops a connect in
// progress or closes the connection); a reply streams into state.

import { useCallback, useEffect, useRef, useState } from 'react';

/** Connects `client` to `contextId` while the component is mounted.
 * Returns `{ connection, state, error }`: `connection` is null until
 * attached; `state` follows the connection's state events; `error` is why
 * it failed. Pass a `client` made once (outside the component, or with
 * `useMemo`): a new one reconnects. */
export function useTokenRelay(client, contextId, options) {
  const timeout = options?.timeout;
  const [connection, setConnection] = useState(null);
  const [state, setState] = useState('idle');
  const [error, setError] = useState(null);
  useEffect(() => {
    if (!client || !contextId) return undefined;
    const controller = new AbortController();
    let off = null;
    setConnection(null);
    setError(null);
    setState('connecting');
    client.connect(contextId, { signal: controller.signal, timeout }).then((conn) => {
      if (controller.signal.aborted) return;
      off = conn.on('state', (e) => {
        setState(e.state);
        if (e.state === 'failed') setError(e.cause);
      });
      setState(conn.state);
      setConnection(conn);
    }, (e) => {
      if (controller.signal.aborted) return;
      setError(e);
      setState('failed');
    });
    return () => {
      off?.();
      controller.abort();
    };
  }, [client, contextId, timeout]);
  return { connection, state, error };
}

const IDLE = { text: '', status: 'idle', response: null, error: null };

/** One reply at a time on `connection`, streaming into state: returns
 * `{ text, status, response, error, send, stop }`. `send(text)` sends a
 * message (stopping the reply before it, if one streams) and resolves with
 * the whole reply, or null when it failed or was stopped (never rejects:
 * the failure is in `error`); `text` grows token by token; `status` is `"idle"`,
 * `"streaming"`, then the reply's own (`"complete"`, `"stopped"`, …) or
 * `"error"`. `stop()` and unmounting stop the reply on the server. */
export function useReply(connection) {
  const [reply, setReply] = useState(IDLE);
  const current = useRef(null);
  useEffect(() => () => current.current?.abort(), [connection]);
  const send = useCallback(async (text) => {
    if (!connection) throw new TypeError('useReply: send() before the connection is attached');
    current.current?.abort();
    const controller = new AbortController();
    current.current = controller;
    setReply({ ...IDLE, status: 'streaming' });
    const stream = connection.stream(text, { signal: controller.signal });
    let acc = '';
    try {
      for await (const token of stream) {
        acc += token;
        const now = acc;
        setReply((r) => ({ ...r, text: now }));
      }
      setReply({ text: acc, status: stream.response.status, response: stream.response, error: null });
      return stream.response;
    } catch (e) {
      // Replaced by a newer send(): that one owns the state now.
      if (current.current === controller || !controller.signal.aborted) {
        const aborted = controller.signal.aborted;
        setReply({ text: acc, status: aborted ? 'stopped' : 'error', response: null, error: aborted ? null : e });
      }
      return null;
    } finally {
      if (current.current === controller) current.current = null;
    }
  }, [connection]);
  const stop = useCallback(() => current.current?.abort(), []);
  return { ...reply, send, stop };
}
