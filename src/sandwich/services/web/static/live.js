// The apps' one script: live order status (Server-Sent Events), live lists for the cook and the
// courier, the delivery presets, and a submit button that does not send its form twice. Every page
// works without it; it only keeps a page current without a reload.
"use strict";

const TERMINAL = new Set(["completed", "cancelled", "payment_failed", "rejected"]);
const CANCELLABLE = new Set(["created", "paid", "assigned"]);

function followOrder(section) {
  const status = section.querySelector("[data-testid=order-status]");
  const history = section.querySelector("[data-history]");
  const cancel = section.querySelector("[data-cancel]");
  if (!status || TERMINAL.has(status.dataset.status)) return;
  const source = new EventSource(section.dataset.liveOrder);
  source.addEventListener("status", (event) => {
    const change = JSON.parse(event.data);
    status.textContent = change.status;
    status.dataset.status = change.status;
    if (history && !history.querySelector(`[data-version="${change.version}"]`)) {
      const known = [...history.children].some((li) => li.dataset.status === change.status);
      if (!known) {
        const item = document.createElement("li");
        item.dataset.status = change.status;
        item.dataset.version = String(change.version);
        const word = document.createElement("span");
        word.textContent = change.status;
        const time = document.createElement("time");
        time.dateTime = change.at;
        time.textContent = " " + String(change.at).slice(11, 19);
        item.append(word, time);
        history.append(item);
      }
    }
    if (cancel && !CANCELLABLE.has(change.status)) cancel.hidden = true;
    if (TERMINAL.has(change.status)) source.close();
  });
}

function followList(holder) {
  const refresh = async () => {
    if (holder.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    try {
      const answer = await fetch(holder.dataset.liveList, { credentials: "same-origin" });
      if (answer.ok) holder.innerHTML = await answer.text();
    } catch (_) {
      // offline for a moment: the next tick tries again
    }
  };
  setInterval(refresh, 2000);
}

function presets() {
  for (const button of document.querySelectorAll("button.preset")) {
    button.addEventListener("click", () => {
      const form = button.closest("form");
      form.elements.address.value = button.dataset.address;
      form.elements.lat.value = button.dataset.lat;
      form.elements.lon.value = button.dataset.lon;
    });
  }
}

function submitOnce() {
  for (const form of document.querySelectorAll("form")) {
    const button = form.querySelector("[data-once]");
    if (!button) continue;
    form.addEventListener("submit", (event) => {
      if (form.dataset.sent) {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "1";
      button.setAttribute("aria-busy", "true");
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live-order]").forEach(followOrder);
  document.querySelectorAll("[data-live-list]").forEach(followList);
  presets();
  submitOnce();
});
