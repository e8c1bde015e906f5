"use strict";
// The demo app. Every request to the token handler and the API carries
// X-CSRF: 1, without which the gateway refuses a session-authenticated
// request; the session cookie goes along by itself (same origin), and
// this script never sees it, nor any token.
const $ = (id) => document.getElementById(id);
const csrf = { "X-CSRF": "1" };

async function showSession() {
  let user = null;
  try {
    const resp = await fetch("/bff/user", { headers: csrf });
    if (resp.ok) {
      user = await resp.json();
    }
  } catch (e) {
    $("status").textContent = "The gateway did not answer: " + e;
    return;
  }
  $("login").hidden = user !== null;
  $("session").hidden = user === null;
  if (user === null) {
    $("status").textContent = "Not logged in.";
    return;
  }
  $("status").textContent = "";
  $("user").textContent = user.name ? user.name + " (" + user.sub + ")" : user.sub;
}

$("login").addEventListener("click", () => {
  location.assign("/bff/login?return_to=/");
});

$("call").addEventListener("click", async () => {
  const out = $("result");
  out.textContent = "";
  delete out.dataset.status;
  try {
    const resp = await fetch("/api/orders", { headers: csrf });
    out.textContent = await resp.text();
    out.dataset.status = String(resp.status);
  } catch (e) {
    out.textContent = "The API call failed: " + e;
  }
});

$("logout").addEventListener("click", async () => {
  let body = {};
  try {
    const resp = await fetch("/bff/logout", { method: "POST", headers: csrf });
    if (resp.ok) {
      body = await resp.json();
    }
  } catch (e) {
    // The session may be gone already; reloading shows where we are.
  }
  if (body.logout_url) {
    location.assign(body.logout_url); // ends the session at the issuer too, then comes back
  } else {
    location.reload();
  }
});

showSession();
