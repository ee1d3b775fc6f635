// The support list, kept current by server-sent events: the server sends the list's
// table again (with this page's filters and sort) whenever it changes. Without
// JavaScript the page is the same list as of its loading; reload for a newer one.
const holder = document.getElementById('live-list')
const status = document.getElementById('live-status')

if (holder && holder.dataset.events && window.EventSource) {
  const source = new EventSource(holder.dataset.events)
  source.addEventListener('list', (event) => {
    holder.innerHTML = event.data
    const count = document.getElementById('list-count')
    status.textContent = 'List updated at ' + new Date().toLocaleTimeString('en-GB') +
      '. ' + (count ? count.textContent.replace(/\s+/g, ' ').trim() : '')
  })
  source.addEventListener('error', () => {
    status.textContent = 'Live updates paused; trying again.'
  })
}
