// "Add a row" in the field mappings: copies the last (empty) row with the next index. Without
// JavaScript every table still ends with empty rows to fill in.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-add-row]");
  if (!button) return;
  const body = button.closest("form").querySelector("table[data-rows] tbody");
  const last = body.querySelector("tr:last-child");
  const names = [...body.querySelectorAll("[name^='rows-']")].map((el) => el.name);
  const next = Math.max(-1, ...names.map((name) => parseInt(name.split("-")[1], 10))) + 1;
  const row = last.cloneNode(true);
  row.classList.remove("missing");
  row.querySelectorAll(".flag").forEach((el) => el.remove());
  row.querySelectorAll("[name^='rows-']").forEach((el) => {
    el.name = el.name.replace(/^rows-\d+-/, `rows-${next}-`);
    if (el.tagName === "SELECT") el.selectedIndex = 0; else el.value = "";
    const label = el.getAttribute("aria-label");
    if (label) el.setAttribute("aria-label", label.replace(/row \d+$/, `row ${body.rows.length + 1}`));
  });
  body.appendChild(row);
  row.querySelector("select, input").focus();
});
