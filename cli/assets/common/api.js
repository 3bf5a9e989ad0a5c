// The public API as both pages use it: the bearer token (kept in sessionStorage, so it ends
// with the tab), JSON requests, and RFC 9457 problems turned into readable errors.

const TOKEN_KEY = 'tessera.token';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  },
  /** The token's claims (`sub`, `role`, `exp`), read without verifying: the server does that. */
  get claims() {
    const token = this.token;
    if (!token) return null;
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(part.padEnd(part.length + (4 - part.length % 4) % 4, '=')));
      if (claims.exp && claims.exp * 1000 < Date.now()) return null;
      return claims;
    } catch {
      return null;
    }
  },
  get(key) { return JSON.parse(sessionStorage.getItem(`tessera.${key}`) || 'null'); },
  put(key, value) { sessionStorage.setItem(`tessera.${key}`, JSON.stringify(value)); },
  clear() { sessionStorage.clear(); },
};

/**
 * Calls `/api/v1{path}`. Resolves to `{status, body, headers}`; rejects with an ApiError that
 * carries the problem (or one made up for a network failure or a non-JSON answer).
 */
export async function api(method, path, { body, headers = {}, root = false } = {}) {
  const url = root ? path : `/api/v1${path}`;
  const init = { method, headers: { Accept: 'application/json, application/problem+json', ...headers } };
  if (session.token) init.headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new ApiError(0, { title: 'Network error', detail: `the server did not answer (${error.message})` });
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = text; }
  }
  if (!response.ok) {
    const problem = parsed && typeof parsed === 'object'
      ? parsed
      : { title: response.statusText || `HTTP ${response.status}`, detail: typeof parsed === 'string' ? parsed.slice(0, 300) : '' };
    problem.status ??= response.status;
    problem.request_id = response.headers.get('x-request-id');
    const retry = response.headers.get('retry-after');
    if (retry) problem.detail = `${problem.detail || ''} (retry after ${retry} s)`.trim();
    throw new ApiError(response.status, problem);
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

/**
 * Follows `/api/v1{path}` as Server-Sent Events with the session's token (EventSource cannot
 * send one): `onEvent({id, event, data})` for each event, `data` parsed as JSON. A dropped
 * connection, or a stream that ends before `until(event)` held for one of its events, is
 * resumed with `Last-Event-ID`; resolves once it held (or the server ended the stream, with no
 * `until`) or `signal` aborts it, rejects with an ApiError when the server refuses it.
 */
export async function follow(path, onEvent, { signal, until } = {}) {
  let lastId = null;
  let done = false;
  for (let attempt = 0; attempt < 5 && !done && !signal?.aborted; attempt += 1) {
    if (attempt > 0) await sleep(500 * attempt);
    const headers = { Accept: 'text/event-stream' };
    if (session.token) headers.Authorization = `Bearer ${session.token}`;
    if (lastId !== null) headers['Last-Event-ID'] = lastId;
    let response;
    try {
      response = await fetch(`/api/v1${path}`, { headers, signal });
    } catch (error) {
      if (signal?.aborted) return;
      continue;
    }
    if (!response.ok) {
      let problem;
      try { problem = await response.json(); } catch { problem = { title: `HTTP ${response.status}` }; }
      throw new ApiError(response.status, problem);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) {
          if (!until) return;
          break;
        }
        const value = chunk.value;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = { id: null, event: 'message', data: '' };
          for (const line of block.split('\n')) {
            const at = line.indexOf(':');
            if (at <= 0) continue;
            const [name, text] = [line.slice(0, at), line.slice(at + 1).replace(/^ /, '')];
            if (name === 'id') event.id = text;
            else if (name === 'event') event.event = text;
            else if (name === 'data') event.data += text;
          }
          if (event.id === null && !event.data) continue;
          if (event.id !== null) lastId = event.id;
          try { event.data = JSON.parse(event.data); } catch { /* kept as text */ }
          if (event.event === 'error') continue;
          onEvent(event);
          attempt = 0;
          if (until?.(event)) done = true;
        }
      }
    } catch (error) {
      if (signal?.aborted) return;
      // The connection broke mid-stream: resume after the last event seen.
    }
  }
}

/** Creates an element: `h('p', {class: 'x'}, 'text', child)`; attributes starting with `on` are listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Replaces `target`'s children, skipping null, undefined and false as `h` does. */
export function fill(target, ...children) {
  target.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/** A problem, readably: its title, detail, code, field errors and the request id. */
export function problemView(error, context = '') {
  const problem = error instanceof ApiError ? error.problem : { title: 'Error', detail: String(error?.message || error) };
  const status = error instanceof ApiError ? error.status : null;
  let hint = null;
  if (status === 401) hint = 'Your session has ended or the credentials are wrong: sign in again.';
  if (status === 403) hint = 'Your role may not do this; the API refused it. Ask an admin.';
  if (status === 429) hint = 'Too many requests: wait a moment and try again.';
  return h('div', { class: 'problem', role: 'alert' },
    h('strong', {}, context ? `${context}: ` : '', problem.title || 'Error', status ? ` (${status})` : ''),
    problem.detail ? h('p', {}, problem.detail) : null,
    Array.isArray(problem.errors) && problem.errors.length
      ? h('ul', {}, problem.errors.map((e) => h('li', {}, h('code', {}, e.field || '(body)'), ' ', e.message)))
      : null,
    hint ? h('p', { class: 'hint' }, hint) : null,
    h('p', { class: 'meta' },
      problem.code ? ['code ', h('code', {}, problem.code)] : null,
      problem.request_id ? ['  request ', h('code', {}, problem.request_id)] : null),
  );
}

/** Shows `error` in `target` (or clears it when `error` is null). */
export function showProblem(target, error, context) {
  target.replaceChildren(...(error ? [problemView(error, context)] : []));
}

export function money(value) {
  if (!value || typeof value.amount !== 'number') return '–';
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: value.currency }).format(value.amount / 100);
  } catch {
    return `${(value.amount / 100).toFixed(2)} ${value.currency}`;
  }
}

export function when(text) {
  if (!text) return '–';
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
}

export function statusBadge(status) {
  return h('span', { class: `badge badge-${status || 'unknown'}` }, status || 'unknown');
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
