#!/usr/bin/python3
"""A SAML IdP made with pysaml2 (Debian's python3-pysaml2), for interop tests.

It answers every AuthnRequest for one configured user, without a login
form, with pysaml2's defaults: a transient NameID, the user's attributes
under their urn:oid names (NameFormat uri) with friendly names, no
objectidentifier, no encryption. Two settings are not pysaml2 7.0's
defaults, because no current IdP has them: the assertion is signed (a
pysaml2 IdP signs nothing unless told to), and with RSA-SHA256 rather than
RSA-SHA1, which the gateway refuses.

  GET /metadata        the IdP's metadata
  GET /sso/redirect    HTTP-Redirect AuthnRequest -> auto-posting form to the ACS

Usage: idp.py --port N --base URL --sp-metadata FILE --key FILE --cert FILE
              --email ADDRESS [--group NAME]... [--given G --surname S]
It prints "ready" on standard output once it listens.
"""

import argparse
import os
import shutil
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import AUTHN_PASSWORD_PROTECTED
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

# Requests are small; anything bigger is not an AuthnRequest.
MAX_URL = 16 << 10


def build(args):
    conf = {
        "entityid": args.base + "/metadata",
        "service": {
            "idp": {
                "endpoints": {
                    "single_sign_on_service": [(args.base + "/sso/redirect", BINDING_HTTP_REDIRECT)],
                },
                "sign_assertion": True,
            }
        },
        "key_file": args.key,
        "cert_file": args.cert,
        "metadata": {"local": [args.sp_metadata]},
        "xmlsec_binary": shutil.which("xmlsec1"),
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
    }
    cfg = IdPConfig()
    cfg.load(conf)
    return Server(config=cfg), cfg


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--sp-metadata", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--group", action="append", default=[])
    p.add_argument("--given", default="Alice")
    p.add_argument("--surname", default="Admin")
    args = p.parse_args()

    idp, cfg = build(args)
    metadata = create_metadata_string(None, config=cfg, valid=None).decode()
    identity = {
        "mail": [args.email],
        "givenName": [args.given],
        "sn": [args.surname],
        "displayName": [args.given + " " + args.surname],
        "eduPersonPrincipalName": [args.email],
    }
    if args.group:
        identity["isMemberOf"] = args.group

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            sys.stderr.write("idp: " + (fmt % a) + "\n")

        def send(self, status, ctype, body):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if len(self.path) > MAX_URL:
                return self.send(414, "text/plain", "too long")
            u = urlparse(self.path)
            if u.path == "/metadata":
                return self.send(200, "application/samlmetadata+xml", metadata)
            if u.path != "/sso/redirect":
                return self.send(404, "text/plain", "not found")
            q = parse_qs(u.query)
            try:
                req = idp.parse_authn_request(q["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
                resp_args = idp.response_args(req.message, [BINDING_HTTP_POST])
                destination = resp_args.pop("destination")
                resp_args.pop("binding", None)
                resp = idp.create_authn_response(
                    identity,
                    userid=args.email,
                    authn={"class_ref": AUTHN_PASSWORD_PROTECTED, "authn_auth": args.base},
                    destination=destination,
                    # pysaml2 7.0 ignores the configured algorithms here.
                    sign_alg=SIG_RSA_SHA256,
                    digest_alg=DIGEST_SHA256,
                    **resp_args,
                )
                http_args = idp.apply_binding(
                    BINDING_HTTP_POST, str(resp), destination,
                    q.get("RelayState", [""])[0], response=True)
            except Exception as e:  # a test reads the reason on stderr
                sys.stderr.write("idp: refused request: %r\n" % (e,))
                return self.send(400, "text/plain", "bad request: %s" % e)
            return self.send(200, "text/html", http_args["data"])

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
