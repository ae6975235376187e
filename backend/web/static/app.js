// PCM-Ops Tools console: progressive enhancement only; every page works without it.
// Loaded as an external file with the page's CSP nonce: no inline script anywhere.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.querySelector(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select the text and copy it";
      }
    });
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  for (const form of document.querySelectorAll("form.toggle")) {
    form.addEventListener("submit", (event) => {
      const action = form.querySelector("button[type=submit]").textContent.trim();
      const name = form.closest("tr")?.id.replace(/^flag-/, "") ?? "this flag";
      if (!window.confirm(`${action} ${name}?`)) event.preventDefault();
    });
  }
});
