// Requests to the twin's API with the caller's key (kept for this browser session only).
const KEY = "twin.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export function authHeaders() {
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

export async function getJSON(url) {
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) {
    const error = new Error(`${url}: HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

/** A Cesium.Resource carrying the key, for tilesets and terrain (derived tile requests inherit it). */
export function resource(url) {
  return new Cesium.Resource({ url, headers: authHeaders() });
}

/** POST a JSON body; resolves to {status, headers, body} (never throws on an HTTP error status). */
export async function postJSON(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", ...authHeaders(), ...headers },
  });
  let json = null;
  try { json = await response.json(); } catch { json = null; }
  return { status: response.status, headers: response.headers, body: json };
}
