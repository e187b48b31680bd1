// The page at GET /: a form for one raw record, sent to POST /predict_price of the API.
// The fields come from the API's own /openapi.json (RawRecord), so the page never lists the
// features itself. The API is the page's own location unless ?api=<base URL> names another;
// every value the API returns is written with textContent, never as HTML.
"use strict";

// examples/raw_record.json (tests/test_browser.py checks that they agree).
const EXAMPLE = {
  "zipcode": "54160", "city_full": "Ashfield, FL", "date": "2021-07-01",
  "median_list_price": 353600, "median_ppsf": 322.43, "median_list_ppsf": 287.57,
  "homes_sold": 75, "pending_sales": 84, "new_listings": 73, "inventory": 166, "median_dom": 45.7,
  "avg_sale_to_list": 0.99, "sold_above_list": 0.32, "off_market_in_two_weeks": 0.41,
  "bank": 4, "bus": 7, "hospital": 9, "mall": 7, "park": 8, "restaurant": 10, "school": 18,
  "station": 11, "supermarket": 10,
  "Total Population": 23124, "Median Age": 36.9, "Per Capita Income": 103667,
  "Total Families Below Poverty": 22662, "Total Housing Units": 9635, "Median Rent": 3697,
  "Median Home Value": 157100, "Total Labor Force": 11562, "Unemployed Population": 1500,
  "Total School Age Population": 21968, "Total School Enrollment": 21968, "Median Commute Time": 10406,
};
// The example's mistakes are those of examples/bad_record.json: a value out of bounds, one missing.
const BAD_EXAMPLE = Object.assign({}, EXAMPLE, { "sold_above_list": 1.5, "median_dom": "" });
// year and month are the alternative to date; price is an actual, not an input.
const SKIPPED = new Set(["year", "month", "price"]);
const TEXT_FIELDS = new Set(["zipcode", "city_full", "date"]);
const MAX_BARS = 8;

const api = apiBase(new URLSearchParams(location.search).get("api"));
const $ = (id) => document.getElementById(id);
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
let fieldNames = [];
let explainSupported = false;

function apiBase(given) {
  // The page's own folder by default: on API Gateway that keeps the stage prefix (/api/).
  const base = given ? new URL(given, location.href) : new URL(location.href);
  base.search = "";
  base.hash = "";
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  return base;
}

function endpoint(path) {
  return new URL(path, api).toString();
}

async function getJSON(path) {
  const response = await fetch(endpoint(path), { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return response.json();
}

function unreachable(error) {
  // fetch() gives no detail on purpose when a browser refuses a cross-origin answer.
  return `Could not reach the API at ${api} (${error.message}). ` +
    "If the API is on another origin, it must allow this page's origin (CORS_ALLOW_ORIGIN).";
}

async function showModel() {
  try {
    const health = await getJSON("health");
    $("model-version").textContent = health.model_version
      ? `model ${health.model_version}` : "model loads with the first estimate";
  } catch (error) {
    $("model-version").textContent = "API unreachable";
  }
}

async function buildForm() {
  let document_;
  try {
    document_ = await getJSON("openapi.json");
  } catch (error) {
    $("fields").textContent = unreachable(error);
    $("fields").classList.add("error");
    return;
  }
  explainSupported = JSON.stringify(document_).includes('"explain"');
  const schema = document_.components.schemas.RawRecord;
  // date is required here: the page offers no year and month, its alternative.
  const required = new Set([...schema.required, "date"]);
  fieldNames = Object.keys(schema.properties).filter((name) => !SKIPPED.has(name));
  const container = $("fields");
  container.textContent = "";
  for (const name of fieldNames) {
    container.append(fieldRow(name, schema.properties[name], required.has(name)));
  }
  fill(EXAMPLE);
}

function fieldRow(name, spec, required) {
  const row = document.createElement("div");
  row.className = "field";
  row.dataset.field = name;
  const label = document.createElement("label");
  const id = `field-${fieldNames.indexOf(name)}`;
  label.htmlFor = id;
  label.textContent = required ? name : `${name} (optional)`;
  const input = document.createElement("input");
  input.id = id;
  input.name = name;
  input.autocomplete = "off";
  if (name === "date") {
    input.placeholder = "2021-07-01";
  } else if (!TEXT_FIELDS.has(name)) {
    input.inputMode = "decimal";
    if (spec.minimum !== undefined) input.title = `${spec.minimum} to ${spec.maximum}`;
  }
  const message = document.createElement("p");
  message.className = "message";
  message.id = `${id}-message`;
  input.setAttribute("aria-describedby", message.id);
  row.append(label, input, message);
  return row;
}

function fill(values) {
  for (const name of fieldNames) {
    const input = document.querySelector(`#fields input[name="${CSS.escape(name)}"]`);
    input.value = values[name] === undefined ? "" : String(values[name]);
  }
  clearResult();
}

function record() {
  const out = {};
  for (const name of fieldNames) {
    const text = document.querySelector(`#fields input[name="${CSS.escape(name)}"]`).value.trim();
    if (text === "") continue; // left out: the API says "missing" if it is needed
    const number = Number(text);
    out[name] = TEXT_FIELDS.has(name) || !Number.isFinite(number) ? text : number;
  }
  return out;
}

function clearResult() {
  for (const id of ["price", "interval", "warnings", "other-problems", "chart"]) $(id).hidden = true;
  $("status").textContent = "";
  $("status").className = "";
  for (const row of document.querySelectorAll(".field")) {
    row.classList.remove("invalid");
    row.querySelector("input").removeAttribute("aria-invalid");
    row.querySelector(".message").textContent = "";
  }
}

async function predict(event) {
  event.preventDefault();
  clearResult();
  $("status").textContent = "Estimating…";
  const body = { records: [record()] };
  if (explainSupported) body.explain = true;
  let response;
  let reply;
  try {
    response = await fetch(endpoint("predict_price"), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    reply = await response.json();
  } catch (error) {
    return fail(unreachable(error));
  }
  if (response.ok) return showPrice(reply);
  if (Array.isArray(reply.problems)) return showProblems(reply);
  return fail(`${response.status}: ${reply.error || "the API refused the request"}`);
}

function fail(text) {
  $("status").textContent = text;
  $("status").className = "error";
}

function showPrice(reply) {
  $("status").textContent = "";
  $("price").textContent = money.format(reply.predictions[0]);
  $("price").hidden = false;
  $("model-version").textContent = `model ${reply.model_version}`;
  if (Array.isArray(reply.lower) && Array.isArray(reply.upper)) {
    const level = Math.round((reply.level || 0) * 100);
    $("interval").textContent =
      `${level}% of prices like this fall between ${money.format(reply.lower[0])} and ${money.format(reply.upper[0])}`;
    $("interval").hidden = false;
  }
  listNotes($("warnings"), reply.warnings || []);
  if (Array.isArray(reply.explanations) && reply.explanations[0]) showChart(reply.explanations[0]);
}

function listNotes(list, problems) {
  list.textContent = "";
  for (const problem of problems) {
    const item = document.createElement("li");
    item.textContent = problem.field ? `${problem.field}: ${problem.message}` : problem.message;
    list.append(item);
  }
  list.hidden = problems.length === 0;
}

function showProblems(reply) {
  fail("Some fields need a change before the model can price this record.");
  const elsewhere = [];
  for (const problem of reply.problems) {
    const row = document.querySelector(`.field[data-field="${CSS.escape(problem.field)}"]`);
    if (!row) {
      elsewhere.push(problem);
      continue;
    }
    row.classList.add("invalid");
    row.querySelector("input").setAttribute("aria-invalid", "true");
    const message = row.querySelector(".message");
    message.textContent = message.textContent ? `${message.textContent}; ${problem.message}` : problem.message;
  }
  listNotes($("other-problems"), elsewhere);
  listNotes($("warnings"), reply.warnings || []);
  const first = document.querySelector(".field.invalid input");
  if (first) first.focus();
}

function showChart(explanation) {
  // Raw records get contributions per input field; pre-encoded ones per model feature.
  const items = (explanation.fields || explanation.contributions || []).map((c) => ({
    name: c.field || c.feature, value: c.value,
  }));
  items.sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
  const top = items.slice(0, MAX_BARS);
  if (top.length === 0) return;
  const largest = Math.max(...top.map((c) => Math.abs(c.value))) || 1;
  const bars = $("bars");
  bars.textContent = "";
  for (const item of top) {
    const row = document.createElement("div");
    row.className = "bar-row";
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = item.name;
    const track = document.createElement("span");
    track.className = "bar-track";
    const bar = document.createElement("span");
    bar.className = item.value < 0 ? "bar negative" : "bar positive";
    bar.style.width = `${(50 * Math.abs(item.value)) / largest}%`;
    track.append(bar);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = (item.value < 0 ? "−" : "+") + money.format(Math.abs(item.value));
    row.append(name, track, value);
    bars.append(row);
  }
  $("baseline").textContent = money.format(explanation.baseline);
  $("chart").hidden = false;
}

$("api-url").textContent = api.toString();
$("record-form").addEventListener("submit", predict);
$("load-example").addEventListener("click", () => fill(EXAMPLE));
$("load-bad-example").addEventListener("click", () => fill(BAD_EXAMPLE));
showModel();
buildForm();
