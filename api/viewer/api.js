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
