// The sign-in page (/login): a file, not an inline script, so that the Content-Security-Policy allows no inline code.
const next = new URLSearchParams(location.search).get('next');
const target = next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
const message = document.getElementById('message');
const post = async (path, body) => {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).detail ?? res.statusText);
  return res;
};
const form = (id) => Object.fromEntries(new FormData(document.getElementById(id)));
const setup = await (await fetch('/api/setup')).json().catch(() => ({ needed: false }));
if (setup.needed) {
  document.getElementById('setup').style.display = 'flex';
  document.getElementById('login').style.display = 'none';
}
document.getElementById('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  try { await post('/api/login', form('login')); location.href = target; } catch (error) { message.textContent = error.message; }
});
document.getElementById('setup').addEventListener('submit', async (e) => {
  e.preventDefault();
  const { setupToken, username, password } = form('setup');
  try {
    await post('/api/setup', { setupToken, username, password });
    await post('/api/login', { username, password });
    location.href = target;
  } catch (error) { message.textContent = error.message; }
});
