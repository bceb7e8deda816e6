/* global document, window, HTMLFormElement, ResizeObserver, setTimeout */
// Operator console behaviour (served as a file: the CSP forbids inline scripts).
// Forms with data-confirm ask before submitting; every console form then disables its button against double posts.
document.addEventListener('submit', (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  const question = form.getAttribute('data-confirm');
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  for (const button of form.querySelectorAll('button[type=submit]')) {
    setTimeout(() => { button.disabled = true; }, 0);
  }
});

// Tables wider than their box (phones): a written hint above them while they scroll sideways; the edge shadows are CSS.
// Watching sizes also catches tables inside <details> that are opened later.
const scrollHint = document.body.getAttribute('data-scroll-hint') || '';
function markOverflow(box) {
  const overflowing = box.scrollWidth > box.clientWidth + 1;
  box.classList.toggle('has-overflow', overflowing);
  let hint = box.previousElementSibling;
  if (!hint || !hint.classList.contains('scroll-hint')) {
    if (!overflowing) return;
    hint = document.createElement('div');
    hint.className = 'scroll-hint';
    hint.textContent = scrollHint;
    box.before(hint);
  }
  hint.hidden = !overflowing;
}
if (typeof ResizeObserver === 'function') {
  const observer = new ResizeObserver((entries) => {
    for (const entry of entries) markOverflow(entry.target);
  });
  for (const box of document.querySelectorAll('.table-responsive')) observer.observe(box);
}
