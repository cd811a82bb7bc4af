// The dashboard's calls to the server (docs/api.md) with its token, and the
// error box they report to. A failed call throws ApiError.
import {$} from './format.js';

const TOKEN_KEY = 'jobsmith.token';
let token = localStorage.getItem(TOKEN_KEY) || '';

// The API token the page sends (kept in localStorage across visits).
export function getToken() { return token; }
export function setToken(value) {
  token = value;
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = {Accept: 'application/json'};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach the server (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: reported below */ }
  if (!res.ok) {
    const err = data && data.error;
    const message = (err && err.message) || text.trim() || res.statusText;
    throw new ApiError(res.status, (err && err.code) || '', message);
  }
  if (data === null) throw new ApiError(res.status, 'bad_response', `${method} ${path}: the answer is not JSON`);
  return data;
}

// The error box.
export function showError(err, context) {
  const box = $('#error');
  let text = err instanceof ApiError
    ? `${err.status ? `${err.status} ` : ''}${err.code ? `${err.code}: ` : ''}${err.message}`
    : String(err && err.message ? err.message : err);
  if (context) text = `${context}: ${text}`;
  if (err instanceof ApiError && (err.status === 401 || err.status === 403))
    text += ' — paste a token with the right role into “API token”.';
  $('#error-text').textContent = text;
  box.hidden = false;
}

export function clearError() {
  $('#error').hidden = true;
  $('#error-text').textContent = '';
}
