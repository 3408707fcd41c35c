// The built-in UI: plain modules over the admin REST, no build step.
const view = document.getElementById('view');

async function api(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.detail ?? res.statusText);
  return body;
}

function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function table(columns, rows) {
  const head = columns.map((c) => `<th>${esc(c.title)}</th>`).join('');
  const body = rows.map((r) => `<tr>${columns.map((c) => `<td>${c.html ? c.html(r) : esc(c.value(r))}</td>`).join('')}</tr>`).join('');
  return `<table><thead><tr>${head}</tr></thead><tbody>${body || `<tr><td colspan="${columns.length}" class="muted">Nothing here yet.</td></tr>`}</tbody></table>`;
}

function formatDate(d) {
  return d && d.length === 8 ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d ?? '';
}

function formatBytes(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function studies(params) {
  const query = new URLSearchParams(params);
  const list = await api(`/api/studies?${query}`);
  view.innerHTML = `
    <form id="search">
      <input name="patientName" placeholder="Patient name (Doe*)" value="${esc(params.get('patientName'))}">
      <input name="patientId" placeholder="Patient ID" value="${esc(params.get('patientId'))}">
      <input name="accessionNumber" placeholder="Accession" value="${esc(params.get('accessionNumber'))}">
      <input name="studyDate" placeholder="Date 20240101-20241231" value="${esc(params.get('studyDate'))}">
      <input name="modality" placeholder="Modality" size="6" value="${esc(params.get('modality'))}">
      <button>Search</button>
    </form>
    <p class="muted">${list.total} studies</p>
    ${table([
      { title: 'Patient', html: (s) => `<a href="#/study/${esc(s.studyInstanceUid)}">${esc(s.patient.patientName || '(no name)')}</a>` },
      { title: 'Patient ID', value: (s) => s.patient.patientId },
      { title: 'Date', value: (s) => formatDate(s.studyDate) },
      { title: 'Description', value: (s) => s.studyDescription },
      { title: 'Accession', value: (s) => s.accessionNumber },
      { title: 'Modalities', value: (s) => s.modalitiesInStudy.join(', ') },
      { title: 'Series', value: (s) => s.numberOfStudyRelatedSeries },
      { title: 'Instances', value: (s) => s.numberOfStudyRelatedInstances },
      { title: 'Size', value: (s) => formatBytes(s.sizeBytes) },
    ], list.items)}`;
  document.getElementById('search').addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(e.target)) if (v) next.set(k, v);
    location.hash = `#/studies?${next}`;
  });
}

async function study(uid) {
  const [s, series] = await Promise.all([api(`/api/studies/${encodeURIComponent(uid)}`), api(`/api/studies/${encodeURIComponent(uid)}/series`)]);
  const parts = await Promise.all(series.items.map((se) => api(`/api/series/${encodeURIComponent(se.seriesInstanceUid)}/instances?limit=1000`)));
  view.innerHTML = `<h2>${esc(s.patient.patientName)} <span class="muted">${esc(s.patient.patientId)}</span></h2>
    <p>${esc(s.studyDescription)} · ${formatDate(s.studyDate)} · accession ${esc(s.accessionNumber ?? '—')} · ${esc(s.studyInstanceUid)}
      · <a href="/viewer?StudyInstanceUIDs=${encodeURIComponent(s.studyInstanceUid)}">open in the viewer</a></p>
    ${series.items.map((se, i) => `<h3>Series ${esc(se.seriesNumber)} ${esc(se.modality)} ${esc(se.seriesDescription)}</h3>
      ${table([
        { title: 'Instance', value: (x) => x.instanceNumber },
        { title: 'SOP Instance UID', value: (x) => x.sopInstanceUid },
        { title: 'Size', value: (x) => formatBytes(x.sizeBytes) },
        { title: '', html: (x) => `<a href="/api/instances/${esc(x.sopInstanceUid)}/file">download</a>` },
      ], parts[i].items)}`).join('')}`;
}

async function quarantine() {
  const list = await api('/api/quarantine?limit=200');
  view.innerHTML = `<p class="muted">${list.total} quarantined objects</p>${table([
    { title: 'Received', value: (q) => q.receivedAt },
    { title: 'Source', value: (q) => q.source },
    { title: 'File', value: (q) => q.originalName },
    { title: 'Reason', value: (q) => `${q.reasonCode}: ${q.reason}` },
    { title: '', html: (q) => `<a href="/api/quarantine/${q.id}/file">bytes</a>` },
  ], list.items)}`;
}

async function route() {
  const [path, query] = (location.hash.slice(1) || '/studies').split('?');
  try {
    const stats = await api('/api/statistics');
    document.getElementById('stats').textContent = `${stats.studies} studies · ${stats.instances} instances · ${formatBytes(stats.sizeBytes)}`;
    if (path.startsWith('/study/')) await study(decodeURIComponent(path.slice(7)));
    else if (path === '/quarantine') await quarantine();
    else await studies(new URLSearchParams(query));
  } catch (error) {
    view.innerHTML = `<p class="error">${esc(error.message)}</p>`;
  }
}

addEventListener('hashchange', route);
route();
