package demoidp

import "html/template"

// loginFormTemplate replaces samlidp's bare login form. samlidp executes it
// with Toast (an error message), URL (where to post), SAMLRequest and
// RelayState (the pending request, to be posted back); the credentials must
// be posted as "user" and "password".
//
// A login_hint in the page's query (the gateway sends the address the user
// typed there) prefills the email, as Entra ID does, and puts the cursor
// in the password field.
//
// Without a SAMLRequest the form posts back to the page's own URL rather
// than to URL (samlidp's /login, which only answers with the session as
// JSON): so an IdP-initiated login at /login/{service} signs the user in and
// goes on to the service provider in one step.
var loginFormTemplate = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — demo IdP</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f3f4f6;color:#111827;margin:0}
main{max-width:22rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.25rem;margin:0 0 .25rem}
p.note{color:#6b7280;font-size:.875rem;margin:0 0 1.5rem}
label{display:block;font-size:.875rem;margin:1rem 0 .25rem}
input[type=email],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #d1d5db;border-radius:.25rem;font-size:1rem}
button{margin-top:1.5rem;width:100%;padding:.6rem;border:0;border-radius:.25rem;background:#4f46e5;color:#fff;font-size:1rem;cursor:pointer}
.toast{background:#fee2e2;color:#991b1b;padding:.5rem .75rem;border-radius:.25rem;font-size:.875rem}
</style>
</head>
<body>
<main>
<h1>Demo Identity Provider</h1>
<p class="note">A test IdP for ssogate. Do not use real credentials.</p>
{{if .Toast}}<p class="toast" role="alert">{{.Toast}}</p>{{end}}
<form method="post"{{if .SAMLRequest}} action="{{.URL}}"{{end}}>
<label for="user">Email</label>
<input id="user" type="email" name="user" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" type="password" name="password" autocomplete="current-password" required>
<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}">
<input type="hidden" name="RelayState" value="{{.RelayState}}">
<button type="submit">Sign in</button>
</form>
</main>
<script>
(function () {
  var hint = new URLSearchParams(location.search).get("login_hint");
  if (hint) {
    document.getElementById("user").value = hint;
    document.getElementById("password").focus();
  }
})();
</script>
</body>
</html>
`))
