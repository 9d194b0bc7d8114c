// Grid explorer page: reads the explorer's JSON API (gridproxy's, plus our
// extra fields) and redraws every few seconds. Everything is built with DOM calls and textContent, never
// innerHTML, because farm names and countries come from users.
'use strict';
(() => {
  const PAGE_SIZE = 24;
  const REFRESH_MS = 5000;
  const state = { page: 1, total: 0, timer: 0, seq: 0 };
  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 || n >= 100 ? Math.round(n) : n.toFixed(1)) + ' ' + units[i];
  }
  const cores = (n) => n + (n === 1 ? ' core' : ' cores');

  // ago formats unix seconds as a time ago.
  function ago(secs) {
    const t = Number(secs) * 1000;
    if (!t || t <= 0) return 'never';
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 90) return s + ' s ago';
    if (s < 5400) return Math.round(s / 60) + ' min ago';
    if (s < 172800) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }

  async function getJSON(url) {
    const r = await fetch(url, { cache: 'no-store' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(url + ': ' + (body.error || r.status + ' ' + r.statusText));
    // gridproxy's Count header comes with ret_count=true; ours always.
    return { body, total: Number(r.headers.get('Count') || r.headers.get('X-Total-Count') || 0) };
  }

  // bar draws used, reserved and free parts of total.
  function bar(name, used, reserved, total, fmt) {
    const pct = (v) => (total > 0 ? Math.min(100, (100 * v) / total) : 0);
    const free = Math.max(0, total - used - reserved);
    const track = el('div', { class: 'track', title: name },
      el('span', { class: 'used' }), el('span', { class: 'reserved' }));
    track.children[0].style.width = pct(used) + '%';
    track.children[1].style.width = pct(reserved) + '%';
    const label = total > 0 ? fmt(used) + ' used · ' + fmt(free) + ' free of ' + fmt(total) : 'none';
    return el('div', { class: 'bar', 'data-resource': name },
      el('span', { class: 'bar-name', text: name }), track,
      el('span', { class: 'bar-label', text: label }));
  }

  function renderStats(st) {
    const tile = (label, value) => el('div', { class: 'tile' },
      el('span', { class: 'tile-value', text: String(value) }), el('span', { class: 'tile-label', text: label }));
    const ns = st.nodes_by_status || {};
    const t = st.total_resources || {};
    $('stats').replaceChildren(
      tile('nodes', st.nodes), tile('up', ns.up || 0), tile('standby', ns.standby || 0), tile('down', ns.down || 0),
      tile('farms', st.farms), tile('twins', st.twins), tile('contracts', st.contracts),
      tile('free IPs', st.free_public_ips + ' / ' + st.publicIps),
      tile('CPU', cores(t.cru || 0)), tile('memory', bytes(t.mru || 0)),
      tile('SSD', bytes(t.sru || 0)), tile('HDD', bytes(t.hru || 0)));
  }

  function renderFarms(farms, total) {
    $('farm-count').textContent = '(' + total + ')';
    $('farms').replaceChildren(...farms.map((f) => el('article', { class: 'card farm', 'data-farm-id': f.farmId },
      el('div', { class: 'card-head' },
        el('strong', { class: 'farm-name', text: f.name }),
        el('span', { class: 'muted', text: '#' + f.farmId })),
      el('div', { class: 'meta', text: f.nodes_up + ' of ' + f.node_count + ' nodes up · ' +
        f.free_ips + ' of ' + f.total_ips + ' public IPs free · twin ' + f.twinId }))));
    const sel = $('farm-select');
    const keep = sel.value;
    sel.replaceChildren(el('option', { value: '', text: 'any' }),
      ...farms.map((f) => el('option', { value: String(f.farmId), text: f.name + ' (#' + f.farmId + ')' })));
    sel.value = keep;
  }

  function renderNodes(nodes, total) {
    $('node-count').textContent = '(' + total + ')';
    $('nodes').replaceChildren(...nodes.map((n) => {
      const t = n.total_resources || {};
      const u = n.used_resources || {};
      const f = n.free_resources || {};
      const reserved = (k) => Math.max(0, (t[k] || 0) - (u[k] || 0) - (f[k] || 0));
      const pc = n.publicConfig || {};
      const loc = n.location || {};
      const place = [loc.country, loc.city].filter(Boolean).join(', ');
      return el('article', { class: 'card node status-' + n.status, 'data-node-id': n.nodeId, 'data-status': n.status },
        el('div', { class: 'card-head' },
          el('strong', { class: 'node-title', text: 'Node ' + n.nodeId }),
          el('span', { class: 'badge ' + n.status, text: n.status })),
        el('div', { class: 'meta' },
          el('span', { class: 'farm-name', text: n.farmName || 'farm ' + n.farmId }),
          document.createTextNode(place ? ' · ' + place : '')),
        bar('CPU', u.cru || 0, reserved('cru'), t.cru || 0, cores),
        bar('Memory', u.mru || 0, reserved('mru'), t.mru || 0, bytes),
        bar('SSD', u.sru || 0, reserved('sru'), t.sru || 0, bytes),
        bar('HDD', u.hru || 0, reserved('hru'), t.hru || 0, bytes),
        el('div', { class: 'meta', text: 'reported ' + ago(n.updatedAt) + ' · ' + n.farm_free_ips +
          ' farm IPs free' + (pc.domain ? ' · ' + pc.domain : '') }));
    }));
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    $('page-info').textContent = 'page ' + state.page + ' of ' + pages;
    $('prev').disabled = state.page <= 1;
    $('next').disabled = state.page >= pages;
  }

  function nodeQuery() {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData($('filters'))) {
      if (String(v).trim() !== '') q.set(k, String(v).trim());
    }
    q.set('page', String(state.page));
    q.set('size', String(PAGE_SIZE));
    q.set('ret_count', 'true');
    return q.toString();
  }

  async function refresh() {
    clearTimeout(state.timer);
    const seq = ++state.seq;
    try {
      const [st, farms, nodes] = await Promise.all([
        getJSON('/stats'), getJSON('/farms?size=1000'), getJSON('/nodes?' + nodeQuery())]);
      if (seq !== state.seq) return; // a newer refresh started meanwhile
      renderStats(st.body);
      renderFarms(farms.body, farms.total);
      state.total = nodes.total;
      renderNodes(nodes.body, nodes.total);
      $('error').hidden = true;
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      document.body.dataset.loaded = 'true';
    } catch (err) {
      if (seq !== state.seq) return;
      $('error').textContent = 'Could not refresh: ' + err.message;
      $('error').hidden = false;
    } finally {
      if (seq === state.seq) state.timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  $('filters').addEventListener('change', () => { state.page = 1; refresh(); });
  $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); state.page = 1; refresh(); });
  $('prev').addEventListener('click', () => { if (state.page > 1) { state.page--; refresh(); } });
  $('next').addEventListener('click', () => { state.page++; refresh(); });
  refresh();
})();
