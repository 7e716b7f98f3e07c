// Penny's chat page: asks POST /v1/chat?stream=true and renders its server-sent events as they arrive.
"use strict";

const keyInput = document.getElementById("key");
const log = document.getElementById("log");
let conversationId = null;

keyInput.value = localStorage.getItem("penny-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("penny-key", keyInput.value.trim()));
document.getElementById("new-conversation").addEventListener("click", () => {
  conversationId = null;
  log.replaceChildren();
});
document.getElementById("close-source").addEventListener("click", () => { document.getElementById("source").hidden = true; });

function headers() {
  return { "Content-Type": "application/json", "Authorization": "Bearer " + keyInput.value.trim() };
}

// Reads a text/event-stream body and calls onEvent(name, data) for each event.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      onEvent(name, JSON.parse(data));
    }
  }
}

function showError(turn, body) {
  const error = (body && body.error) || { code: "network", message: "the server could not be reached" };
  const text = turn.querySelector(".text");
  text.classList.add("error");
  text.textContent = `${error.message} (${error.code})`;
}

function showAnswer(turn, chat) {
  const answer = chat.answer;
  turn.querySelector(".text").textContent = answer.text;
  const path = turn.querySelector(".path");
  path.textContent = "path: " + answer.path;
  path.classList.add(answer.path);
  if (answer.form) turn.querySelector(".form").textContent = "form: " + answer.form;
  showFlags(turn.querySelector(".flags"), answer.flags);
  showPassage(turn.querySelector(".passage"), answer.citations[0]);
  turn.querySelector(".confidence").textContent = "confidence: " + answer.confidence.toFixed(2);
  const cost = answer.cost;
  turn.querySelector(".cost").textContent =
    `cost: $${cost.usd_local.toFixed(6)} local ($${cost.usd_api_equivalent.toFixed(6)} at API prices), ` +
    `${cost.llm_prompt_tokens + cost.llm_completion_tokens} LLM tokens`;
  const list = turn.querySelector(".citations");
  for (const citation of answer.citations) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = citation.url;
    link.className = "citation";
    link.textContent = citation.title + (citation.section ? " — " + citation.section : "") +
      (citation.page ? `, page ${citation.page}` : "");
    link.title = citation.source_path;
    link.addEventListener("click", (event) => { event.preventDefault(); openSource(citation); });
    item.append(link);
    list.append(item);
  }
  const feedback = turn.querySelector(".feedback");
  feedback.hidden = false;
  for (const button of feedback.querySelectorAll("button")) {
    button.addEventListener("click", async () => {
      const response = await fetch("/v1/feedback", {
        method: "POST", headers: headers(),
        body: JSON.stringify({ message_id: chat.message_id, rating: button.dataset.rating }),
      });
      if (response.ok) feedback.textContent = "Thanks for the feedback.";
    });
  }
}

// The vocabulary of Answer.flags (GET /v1/flags), read once: each flag is shown with what it means.
let flagMeanings = null;
async function showFlags(list, flags) {
  if (!flags.length) return;
  if (flagMeanings === null) {
    const response = await fetch("/v1/flags", { headers: headers() });
    flagMeanings = response.ok ? await response.json() : {};
  }
  for (const flag of flags) {
    const [name, ...detail] = flag.split(":");
    const item = document.createElement("li");
    item.textContent = (flagMeanings[name] || name) + (detail.length ? ` (${detail.join(":")})` : "");
    item.dataset.flag = name;
    list.append(item);
  }
}

// A passage answer's passage, its answering span marked: the reader sees the answer in its context.
function showPassage(element, citation) {
  if (!citation || !citation.passage || citation.span_start === null || citation.span_end === null) return;
  const text = citation.passage;
  const mark = document.createElement("mark");
  mark.textContent = text.slice(citation.span_start, citation.span_end);
  element.replaceChildren(text.slice(0, citation.span_start), mark, text.slice(citation.span_end));
  element.hidden = false;
}

// Citations need the key to be read, so the page fetches them rather than navigating.
async function openSource(citation) {
  const response = await fetch(`/v1/documents/${citation.document_id}`, { headers: headers() });
  const body = await response.json();
  const panel = document.getElementById("source");
  document.getElementById("source-title").textContent = body.title || citation.title;
  const chunk = (body.chunks || []).find((c) => c.id === citation.chunk_id);
  document.getElementById("source-text").textContent =
    response.ok ? (chunk ? chunk.text : "") : body.error.message;
  panel.hidden = false;
}

document.getElementById("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("question");
  const question = input.value.trim();
  if (!question) return;
  input.value = "";
  const turn = document.getElementById("turn").content.firstElementChild.cloneNode(true);
  turn.querySelector(".question").textContent = question;
  log.append(turn);
  const text = turn.querySelector(".text");
  let response;
  try {
    response = await fetch("/v1/chat?stream=true", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ message: question, conversation_id: conversationId }),
    });
  } catch (error) {
    showError(turn, null);
    return;
  }
  if (!response.ok) {
    showError(turn, await response.json().catch(() => null));
    return;
  }
  await readEvents(response, (name, data) => {
    if (name === "delta") text.textContent += data.text;
    else if (name === "answer") { conversationId = data.conversation_id; showAnswer(turn, data); }
    else if (name === "error") showError(turn, data);
  });
});
