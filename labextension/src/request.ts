/**
 * Calls to the server extension under `{baseUrl}/bitfusion/api/`, with the server's errors as
 * `ResponseError` carrying the sentence the server wrote (`message`) and the field at fault.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { EventStreamParser, IEventFrame } from './events';

export const API_PATH = 'bitfusion/api';

/** The server answered with an error; `message` is its sentence for people. */
export class ResponseError extends Error {
  constructor(
    readonly response: Response,
    message: string,
    readonly field: string | null = null
  ) {
    super(message);
    this.name = 'ResponseError';
  }
}

/** Call `endPoint` (e.g. `pool`, `kernels/ID`) and return its JSON body (null when empty). */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_PATH, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const message =
      (data && typeof data === 'object' && data.message) ||
      `${response.status} ${response.statusText}`;
    throw new ResponseError(response, message, data?.field ?? null);
  }
  return data as T;
}

/**
 * Follow a server-sent event stream until the server ends it or `signal` aborts it; each frame
 * goes to `onFrame` as it arrives.
 */
export async function followEvents(
  endPoint: string,
  onFrame: (frame: IEventFrame) => void,
  signal?: AbortSignal,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<void> {
  const url = URLExt.join(settings.baseUrl, API_PATH, endPoint);
  const response = await ServerConnection.makeRequest(
    url,
    { signal, headers: { Accept: 'text/event-stream' } },
    settings
  );
  if (!response.ok || !response.body) {
    const text = await response.text();
    let message = `${response.status} ${response.statusText}`;
    try {
      message = JSON.parse(text).message || message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ResponseError(response, message);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new EventStreamParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    parser.push(decoder.decode(value, { stream: true })).forEach(onFrame);
  }
}
