// The web console: a client of the public HTTP API (/api/v1/…), nothing more.
//
// Rules this file keeps (the page's Content-Security-Policy enforces the first two):
// - requests go to this origin only, with relative paths;
// - the API key is kept in this browser's localStorage and sent only in the
//   Authorization header of those requests;
// - nothing the API returns is parsed as HTML: text goes in with textContent and
//   attributes with setAttribute, elements are made with createElement.
'use strict';

const KEY_ITEM = 'shortener.api_key';
const PAGE_SIZE = 20;
const SVG = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child);
  return node;
}

// ---- The API ----------------------------------------------------------------

/** An error answer of the API: its status and its `error` object. */
class ApiFailure extends Error {
  constructor(status, error) {
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.field = error.field || '';
  }
}

function apiKey() {
  try {
    return localStorage.getItem(KEY_ITEM) || '';
  } catch {
    return '';
  }
}

/** Calls the API; resolves to the JSON body (or a Blob with `as: 'blob'`). */
async function api(method, path, { body, as = 'json' } = {}) {
  if (!path.startsWith('/api/v1/')) throw new Error('not an API path');
  const headers = { Accept: as === 'blob' ? 'image/png' : 'application/json' };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch {
    throw new ApiFailure(0, { code: 'network', message: 'The service could not be reached.' });
  }
  if (!res.ok) {
    let error = { code: `http_${res.status}`, message: `The service answered ${res.status}.` };
    try {
      const parsed = await res.json();
      if (parsed && parsed.error && typeof parsed.error.message === 'string') error = parsed.error;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new ApiFailure(res.status, error);
  }
  if (res.status === 204) return null;
  return as === 'blob' ? res.blob() : res.json();
}

const path = {
  links: '/api/v1/links',
  link: (code) => `/api/v1/links/${encodeURIComponent(code)}`,
  stats: (code, from, to) => {
    const q = new URLSearchParams();
    if (from) q.set('from', from);
    if (to) q.set('to', to);
    return `/api/v1/links/${encodeURIComponent(code)}/stats?${q}`;
  },
  qr: (code, format, size) =>
    `/api/v1/links/${encodeURIComponent(code)}/qr?format=${format}&size=${size}`,
};

// ---- Errors next to their fields ---------------------------------------------

function clearErrors(form) {
  for (const p of form.querySelectorAll('[data-error-for]')) {
    p.hidden = true;
    p.textContent = '';
  }
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
}

/** Shows the API's message next to the field it concerns, or at the form's foot. */
function showError(form, failure) {
  const message = failure instanceof ApiFailure ? failure.message : String(failure);
  const field = failure instanceof ApiFailure ? failure.field : '';
  const slot =
    form.querySelector(`[data-error-for="${CSS.escape(field)}"]`) ||
    form.querySelector('[data-error-for=""]') ||
    form.querySelector('[data-error-for]');
  slot.textContent = message;
  slot.hidden = false;
  const input = field && form.querySelector(`[name="${CSS.escape(field)}"]`);
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  } else {
    // A message about the whole form (a 503, a network failure): announced (role=alert)
    // and focused, so that a keyboard or screen reader user lands on it.
    slot.setAttribute('tabindex', '-1');
    slot.focus();
  }
}

async function busy(form, work) {
  const buttons = form.querySelectorAll('button');
  for (const b of buttons) b.disabled = true;
  try {
    return await work();
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

// ---- Formatting -------------------------------------------------------------

function when(iso) {
  if (!iso) return 'never';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** An RFC 3339 instant as a datetime-local value in this browser's time zone. */
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local value as an RFC 3339 instant (or null when empty). */
function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

function utcDay(date) {
  return date.toISOString().slice(0, 10);
}

// ---- QR codes -----------------------------------------------------------------

const qrUrls = new Map();
const qrAsks = new Map();

/** Fetches a link's QR code with the key (the image is the caller's to see). */
async function showQr(code, img, download) {
  for (const url of qrUrls.get(img) || []) URL.revokeObjectURL(url);
  qrUrls.set(img, []);
  img.removeAttribute('src');
  download.hidden = true;
  const ask = (qrAsks.get(img) || 0) + 1;
  qrAsks.set(img, ask);
  try {
    const [svgBlob, pngBlob] = await Promise.all([
      api('GET', path.qr(code, 'svg', 320), { as: 'blob' }),
      api('GET', path.qr(code, 'png', 1024), { as: 'blob' }),
    ]);
    if (qrAsks.get(img) !== ask) return; // another link's code was asked for since
    const svgUrl = URL.createObjectURL(svgBlob);
    const pngUrl = URL.createObjectURL(pngBlob);
    qrUrls.set(img, [svgUrl, pngUrl]);
    img.src = svgUrl;
    img.alt = `QR code of the short link ${code}`;
    download.href = pngUrl;
    download.setAttribute('download', `${code}.png`);
    download.hidden = false;
  } catch {
    if (qrAsks.get(img) === ask) img.alt = 'The QR code could not be loaded';
  }
}

// ---- The key ------------------------------------------------------------------

function renderKeyState() {
  const key = apiKey();
  $('key').value = '';
  $('key-forget').hidden = !key;
  $('key-save').textContent = key ? 'Use another key' : 'Use key';
  $('key-status').textContent = key
    ? `Using key ${key.split('_').slice(0, 2).join('_')}… (kept in this browser)`
    : 'No key: links are made anonymously, where this service allows it.';
}

async function saveKey(event) {
  event.preventDefault();
  const form = $('key-form');
  clearErrors(form);
  const key = $('key').value.trim();
  if (!key) {
    showError(form, new ApiFailure(0, { code: 'missing_key', message: 'Paste an API key first.', field: 'key' }));
    return;
  }
  const previous = apiKey();
  localStorage.setItem(KEY_ITEM, key);
  try {
    await busy(form, () => api('GET', `${path.links}?limit=1`));
  } catch (failure) {
    if (previous) localStorage.setItem(KEY_ITEM, previous);
    else localStorage.removeItem(KEY_ITEM);
    showError(form, failure.status === 401 ? Object.assign(failure, { field: 'key' }) : failure);
    return;
  }
  renderKeyState();
  route();
}

function forgetKey() {
  localStorage.removeItem(KEY_ITEM);
  clearErrors($('key-form'));
  renderKeyState();
  location.hash = '';
  route();
}

// ---- Shortening -------------------------------------------------------------------

async function shorten(event) {
  event.preventDefault();
  const form = $('shorten-form');
  clearErrors(form);
  const body = { url: $('shorten-url').value.trim() };
  const alias = $('shorten-alias').value.trim();
  if (alias) body.alias = alias;
  const expires = fromLocalInput($('shorten-expires').value);
  if (expires) body.expires_at = expires;
  body.redirect = Number($('shorten-redirect').value);
  let link;
  try {
    link = await busy(form, () => api('POST', path.links, { body }));
  } catch (failure) {
    if (failure.field === 'alias' || failure.field === 'expires_at' || failure.field === 'redirect') {
      form.querySelector('details').open = true;
    }
    showError(form, failure);
    return;
  }
  form.reset();
  const a = $('result-link');
  a.textContent = link.short_url;
  a.href = link.short_url;
  $('result-open').href = `#link/${encodeURIComponent(link.code)}`;
  $('result').hidden = false;
  showQr(link.code, $('result-qr'), $('result-qr-png'));
  if (apiKey()) loadLinks(true);
}

// ---- The list of links ----------------------------------------------------------------

let nextCursor = null;
// Each load of the list is numbered; only the latest one's answer is used, and "Load
// older links" is disabled while it loads (a second click would add the page twice).
let listAsk = 0;

async function loadLinks(fresh) {
  const table = $('links-table');
  const tbody = table.querySelector('tbody');
  const error = $('links-error');
  error.hidden = true;
  if (!apiKey()) {
    table.hidden = true;
    $('links-more').hidden = true;
    $('links-hint').textContent =
      'Use an API key (at the top) to see and manage the links made with it. ' +
      'Whoever runs the service makes one with: shortener keys create --tenant NAME. ' +
      'Links made without a key work, but nobody can edit or delete them.';
    return;
  }
  const more = $('links-more');
  if (!fresh && more.disabled) return;
  if (fresh) nextCursor = null;
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (nextCursor) q.set('cursor', nextCursor);
  const ask = ++listAsk;
  more.disabled = true;
  let page;
  try {
    page = await api('GET', `${path.links}?${q}`);
  } catch (failure) {
    if (ask !== listAsk) return;
    error.textContent = failure.message;
    error.hidden = false;
    return;
  } finally {
    if (ask === listAsk) more.disabled = false;
  }
  if (ask !== listAsk) return;
  if (fresh) tbody.replaceChildren();
  for (const link of page.links) {
    const open = el('a', { href: `#link/${encodeURIComponent(link.code)}` }, link.code);
    tbody.append(
      el('tr', {},
        el('td', {}, open),
        el('td', { class: 'target' }, link.url),
        el('td', {}, when(link.created_at)),
        el('td', {}, link.status)),
    );
  }
  nextCursor = page.next_cursor;
  const empty = tbody.children.length === 0;
  table.hidden = empty;
  $('links-hint').textContent = empty ? 'No links yet: shorten one above.' : '';
  $('links-more').hidden = !nextCursor;
}

// ---- One link -------------------------------------------------------------------------

let current = null;
// Each opening of a link (or of the list) is numbered; an answer that arrives after the
// person went elsewhere is dropped, so link A's details never show under link B.
let view = 0;

function renderLink(link) {
  current = link;
  $('link-heading').textContent = `Link ${link.code}`;
  const a = $('link-short');
  a.textContent = link.short_url;
  a.href = link.short_url;
  $('link-target').textContent = link.url;
  $('link-created').textContent = when(link.created_at);
  $('link-expires').textContent = when(link.expires_at);
  $('link-redirect').textContent = String(link.redirect);
  $('link-status').textContent = link.status;
  $('edit-url').value = link.url;
  $('edit-expires').value = toLocalInput(link.expires_at);
  $('edit-redirect').value = String(link.redirect);
}

/** The link page with only a heading and an error: nothing of a previous link. */
function linkFailed(heading, message) {
  current = null;
  $('link-heading').textContent = heading;
  $('link-body').hidden = true;
  const error = $('link-error');
  error.textContent = message;
  error.hidden = false;
}

function showLinkPage() {
  $('shorten').hidden = true;
  $('links').hidden = true;
  $('link').hidden = false;
}

async function openLink(code) {
  const mine = ++view;
  showLinkPage();
  current = null;
  $('link-body').hidden = true;
  const error = $('link-error');
  error.hidden = true;
  for (const form of [$('edit-form'), $('stats-form')]) clearErrors(form);
  $('edit-done').hidden = true;
  $('link-heading').textContent = `Link ${code}`;
  const today = new Date();
  $('stats-to').value = utcDay(today);
  $('stats-from').value = utcDay(new Date(today.getTime() - 29 * 86400000));
  let link;
  try {
    link = await api('GET', path.link(code));
  } catch (failure) {
    if (mine === view) linkFailed(`Link ${code}`, failure.message);
    return;
  }
  if (mine !== view) return;
  renderLink(link);
  $('link-body').hidden = false;
  showQr(link.code, $('link-qr'), $('link-qr-png'));
  loadStats();
  $('link-heading').focus();
}

async function saveEdit(event) {
  event.preventDefault();
  if (!current) return;
  const form = $('edit-form');
  clearErrors(form);
  $('edit-done').hidden = true;
  const changes = {};
  const url = $('edit-url').value.trim();
  if (url !== current.url) changes.url = url;
  const expires = fromLocalInput($('edit-expires').value);
  if (expires !== (current.expires_at ? fromLocalInput(toLocalInput(current.expires_at)) : null)) {
    changes.expires_at = expires;
  }
  const redirect = Number($('edit-redirect').value);
  if (redirect !== current.redirect) changes.redirect = redirect;
  if (Object.keys(changes).length === 0) {
    showError(form, new ApiFailure(0, {
      code: 'no_changes', message: 'Nothing to save: change the target, the expiry or the redirect first.',
    }));
    return;
  }
  const mine = view;
  try {
    const link = await busy(form, () => api('PATCH', path.link(current.code), { body: changes }));
    if (mine !== view) return;
    renderLink(link);
    $('edit-done').hidden = false;
  } catch (failure) {
    showError(form, failure);
  }
}

async function deleteLink() {
  if (!current) return;
  if (!window.confirm(`Delete ${current.short_url}? It will answer "410 Gone" from now on.`)) return;
  const form = $('edit-form');
  clearErrors(form);
  try {
    await busy(form, () => api('DELETE', path.link(current.code)));
  } catch (failure) {
    showError(form, failure);
    return;
  }
  current = null;
  location.hash = '';
}

// ---- Stats ------------------------------------------------------------------------------

// Each ask for stats is numbered too: an older range's answer never replaces a newer one.
let statsAsk = 0;

async function loadStats(event) {
  if (event) event.preventDefault();
  if (!current) return;
  const form = $('stats-form');
  clearErrors(form);
  const mine = view;
  const ask = ++statsAsk;
  const stale = () => mine !== view || ask !== statsAsk;
  let stats;
  try {
    stats = await busy(form, () =>
      api('GET', path.stats(current.code, $('stats-from').value, $('stats-to').value)));
  } catch (failure) {
    if (!stale()) showError(form, failure);
    return;
  }
  if (stale()) return;
  $('stats-total').textContent = String(stats.total);
  $('stats-humans').textContent = String(stats.humans);
  $('stats-bots').textContent = String(stats.bots);
  $('stats-visitors').textContent = String(stats.visitors);
  drawChart(stats.daily);
  shareTable('countries', stats.countries, stats.total);
  shareTable('cities', stats.cities, stats.total);
  for (const [id, values] of [
    ['top-referrers', stats.referrers],
    ['top-browsers', stats.browsers],
    ['top-os', stats.os],
    ['top-devices', stats.devices],
    ['top-utm-sources', stats.utm_sources],
    ['top-utm-mediums', stats.utm_mediums],
    ['top-utm-campaigns', stats.utm_campaigns],
  ]) {
    const list = $(id);
    list.replaceChildren(
      ...values.map((v) => el('li', {}, `${v.value || '(none)'} `, el('span', {}, `${v.total}`))),
    );
    if (values.length === 0) list.append(el('li', { class: 'hint' }, 'none yet'));
  }
}

/** A dimension's values with their clicks and their share of all clicks, as a meter. */
function shareTable(id, values, total) {
  const body = $(id).tBodies[0];
  body.replaceChildren(
    ...values.map((v) => {
      const share = total > 0 ? v.total / total : 0;
      const percent = `${Math.round(share * 100)}%`;
      return el('tr', {},
        el('td', {}, v.value),
        el('td', {}, String(v.total)),
        el('td', {}, el('meter', { min: '0', max: '1', value: String(share), title: percent }, percent)));
    }),
  );
  if (values.length === 0) body.append(el('tr', { class: 'hint' }, el('td', { colspan: '3' }, 'none yet')));
}

/** The daily series as bars: humans below, bots stacked on top; visitors as dots. */
function drawChart(daily) {
  const width = 720;
  const height = 180;
  const top = 12;
  const bottom = 22;
  const left = 30;
  const plot = height - top - bottom;
  const max = Math.max(1, ...daily.map((d) => d.total));
  const step = (width - left) / Math.max(1, daily.length);
  const bar = Math.max(1, step * 0.8);
  const total = daily.reduce((n, d) => n + d.total, 0);
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: 'none',
    role: 'img',
    'aria-label': `${total} clicks from ${daily[0]?.day ?? ''} to ${daily.at(-1)?.day ?? ''}, at most ${max} a day`,
  });
  chart.append(
    svg('line', { class: 'grid', x1: left, x2: width, y1: top, y2: top }),
    svg('line', { class: 'grid', x1: left, x2: width, y1: top + plot, y2: top + plot }),
    svg('text', { class: 'axis', x: 0, y: top + 4 }, String(max)),
    svg('text', { class: 'axis', x: 0, y: top + plot }, '0'),
  );
  daily.forEach((d, i) => {
    const x = left + i * step + (step - bar) / 2;
    const humans = d.total - d.bots;
    const hHeight = (humans / max) * plot;
    const bHeight = (d.bots / max) * plot;
    const label = `${d.day}: ${d.total} click${d.total === 1 ? '' : 's'} (${d.bots} by bots), `
      + `${d.visitors} visitor${d.visitors === 1 ? '' : 's'}`;
    const group = svg('g', { 'data-day': d.day, 'data-total': d.total, 'data-visitors': d.visitors },
      svg('title', {}, label));
    group.append(
      svg('rect', { class: 'human', x, width: bar, y: top + plot - hHeight, height: hHeight }),
      svg('rect', { class: 'bot', x, width: bar, y: top + plot - hHeight - bHeight, height: bHeight }),
    );
    if (d.visitors > 0) {
      const r = Math.max(1.5, Math.min(4, bar / 3));
      group.append(svg('circle', {
        class: 'visitors', cx: x + bar / 2, cy: top + plot - (d.visitors / max) * plot, r,
      }));
    }
    chart.append(group);
  });
  if (daily.length) {
    chart.append(
      svg('text', { class: 'axis', x: left, y: height - 6 }, daily[0].day),
      svg('text', { class: 'axis', x: width, y: height - 6, 'text-anchor': 'end' }, daily.at(-1).day),
    );
  }
  $('chart').replaceChildren(chart);
}

// ---- Copying, routing, start --------------------------------------------------------

async function copy(event) {
  const button = event.currentTarget;
  const text = $(button.dataset.copyFrom).textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Copy failed: select the link';
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 2000);
}

function route() {
  const match = /^#link\/(.+)$/.exec(location.hash);
  if (match) {
    let code;
    try {
      code = decodeURIComponent(match[1]);
    } catch {
      view += 1;
      showLinkPage();
      linkFailed('No such link', 'This address is not a link of this console: its code is malformed.');
      return;
    }
    openLink(code);
    return;
  }
  view += 1;
  current = null;
  $('link').hidden = true;
  $('shorten').hidden = false;
  $('links').hidden = false;
  loadLinks(true);
}

document.addEventListener('DOMContentLoaded', () => {
  $('key-form').addEventListener('submit', saveKey);
  $('key-forget').addEventListener('click', forgetKey);
  $('shorten-form').addEventListener('submit', shorten);
  $('edit-form').addEventListener('submit', saveEdit);
  $('delete').addEventListener('click', deleteLink);
  $('stats-form').addEventListener('submit', loadStats);
  $('links-more').addEventListener('click', () => loadLinks(false));
  for (const button of document.querySelectorAll('button.copy')) {
    button.addEventListener('click', copy);
  }
  $('link-heading').setAttribute('tabindex', '-1');
  window.addEventListener('hashchange', route);
  renderKeyState();
  route();
});
