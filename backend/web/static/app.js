// PCM-Ops Tools console: progressive enhancement only; every page works without it.
// Loaded as an external file with the page's CSP nonce: no inline script anywhere.
// Marks pages whose flag forms use the dialog below (their no-JS reason fields then hide).
if (typeof HTMLDialogElement === "function") document.documentElement.classList.add("js");

// The flag switch and per-flag rollback ask for confirmation and a reason in one <dialog>;
// the reason goes into the form's own field and the form then posts as it would without JS.
function flagDialog(dialog) {
  const title = dialog.querySelector("#flag-dialog-title");
  const text = dialog.querySelector("#flag-dialog-text");
  const reason = dialog.querySelector("#flag-dialog-reason");
  const confirm = dialog.querySelector("#flag-dialog-confirm");
  let pending = null;
  dialog.addEventListener("close", () => {
    const form = pending;
    pending = null;
    if (!form || dialog.returnValue !== "confirm") return;
    form.querySelector("input[name=reason]").value = reason.value.trim();
    form.submit();
  });
  return (form, heading, detail, action) => {
    pending = form;
    title.textContent = heading;
    text.textContent = detail;
    confirm.textContent = action;
    confirm.classList.toggle("danger", action !== "Turn on");
    reason.value = form.querySelector("input[name=reason]").value;
    dialog.returnValue = "";
    dialog.showModal();
    reason.focus();
  };
}

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
  const dialog = document.getElementById("flag-dialog");
  if (!dialog || typeof dialog.showModal !== "function") return;
  const ask = flagDialog(dialog);
  for (const form of document.querySelectorAll("form.toggle")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const action = form.dataset.action;
      ask(form, `${action} ${form.dataset.flag}?`,
        form.dataset.restart === "yes"
          ? "The change is stored now and takes effect after the next restart."
          : "The change takes effect at once on every worker and is recorded in the audit trail.",
        action);
    });
  }
  for (const form of document.querySelectorAll("form.rollback")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      ask(form, `Roll back ${form.dataset.flag}?`,
        `Sets it to its rollback value (${form.dataset.rollbackValue}) and writes a rollback record.`,
        "Roll back");
    });
  }
});
