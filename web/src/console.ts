/**
 * A console into a guest: xterm.js on a WebSocket to /v1/guests/NAME/attach?mode=enter (a
 * login shell on a pty made inside the guest). Binary messages carry the streams (first byte
 * 0 stdin, 1 stdout, 2 stderr); text messages resize, and end the session.
 */
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { withToken } from './api.js';

export interface ConsoleSession {
  close(): void;
}

export function openConsole(
  host: HTMLElement,
  name: string,
  onEnd: (message: string) => void,
): ConsoleSession {
  const term = new Terminal({
    cursorBlink: true,
    fontSize: 13,
    fontFamily: 'ui-monospace, Menlo, Consolas, monospace',
    theme: { background: '#1d1f21' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  fit.fit();
  const ws = new WebSocket(withToken(`/v1/guests/${encodeURIComponent(name)}/attach?mode=enter`, true));
  ws.binaryType = 'arraybuffer';
  const enc = new TextEncoder();
  const send = (stream: number, data: Uint8Array): void => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const b = new Uint8Array(data.length + 1);
    b[0] = stream;
    b.set(data, 1);
    ws.send(b);
  };
  ws.onopen = () => {
    ws.send(JSON.stringify({ tty: true, rows: term.rows, cols: term.cols }));
    term.focus();
  };
  ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => {
    if (typeof m.data === 'string') {
      const x = JSON.parse(m.data) as { type: string; code?: number; message?: string };
      onEnd(x.type === 'exit' ? `The shell ended (status ${x.code ?? '?'})` : (x.message ?? 'error'));
      return;
    }
    term.write(new Uint8Array(m.data).subarray(1));
  };
  ws.onclose = () => onEnd('Disconnected');
  const input = term.onData((s) => send(0, enc.encode(s)));
  const resize = term.onResize(({ rows, cols }) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', rows, cols }));
  });
  const onWindow = (): void => fit.fit();
  window.addEventListener('resize', onWindow);
  return {
    close() {
      window.removeEventListener('resize', onWindow);
      input.dispose();
      resize.dispose();
      ws.onclose = null;
      ws.close();
      term.dispose();
    },
  };
}
