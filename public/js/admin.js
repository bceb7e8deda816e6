/* global document, window, HTMLFormElement, setTimeout */
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
