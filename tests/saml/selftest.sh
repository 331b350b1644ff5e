#!/usr/bin/env bash
# Self-test of tests/saml/sp.py, without guise: a throw-away IdP key and certificate
# (openssl), hand-written IdP metadata, Responses built by hand and their Assertion
# signed by Debian's xmlsec1. Each case feeds sp.py and checks its verdict.
#
# It is also the reference for what guise must produce: the XML shapes below pass
# python3-saml's strict validation, and the xmlsec1 command lines are the ones that
# work with a self-signed certificate (see tests/saml/README.md).
#
#   tests/saml/selftest.sh            # sets up the venv with scripts/ensure-test-tools
#   SAML_SP_PYTHON=/path/bin/python tests/saml/selftest.sh
#   KEEP=1 tests/saml/selftest.sh     # keep the work directory and print its path
# shellcheck disable=SC2015  # `check && pass || fail`: pass and fail always return 0
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${SAML_SP_PYTHON:-$(scripts/ensure-test-tools | tail -n 1)}
SP=tests/saml/sp.py

WORK=$(mktemp -d "${TMPDIR:-/tmp}/guise-saml-selftest.XXXXXX")
if [ -n "${KEEP:-}" ]; then
    echo "selftest: work directory $WORK" >&2
else
    trap 'rm -rf "$WORK"' EXIT
fi

ASSERTION_NS=urn:oasis:names:tc:SAML:2.0:assertion:Assertion
IDP_ENTITY=http://127.0.0.1:8080/samlp/metadata/client1
SSO_URL=http://127.0.0.1:8080/samlp/client1
SP_ENTITY=urn:guise:test-sp
ACS_URL=http://127.0.0.1:9090/saml/acs

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok   %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; [ -z "${2:-}" ] || printf '     %s\n' "$2"; }

# --- IdP key, self-signed certificate, metadata -------------------------------------
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 2 -subj "/CN=guise-selftest-idp" \
    -keyout "$WORK/idp.key" -out "$WORK/idp.crt" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 2 -subj "/CN=someone-else" \
    -keyout "$WORK/other.key" -out "$WORK/other.crt" 2>/dev/null
CERT_B64=$(sed '1d;$d' "$WORK/idp.crt" | tr -d '\n')

# Element order inside IDPSSODescriptor follows the metadata schema:
# KeyDescriptor*, (SingleLogoutService*), NameIDFormat*, SingleSignOnService+.
cat > "$WORK/metadata.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="$IDP_ENTITY">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="false">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>$CERT_B64</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="$SSO_URL"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="$SSO_URL"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
EOF

# --- helpers --------------------------------------------------------------------------

# sp_json SUBCOMMAND KEY=VALUE...: the common settings input plus extra string fields;
# VALUE "null" becomes JSON null, a value starting with @ is read from that file.
sp_input() {
    "$PY" - "$WORK/metadata.xml" "$SP_ENTITY" "$ACS_URL" "$@" <<'PYEOF'
import json, sys
meta, sp_entity, acs = sys.argv[1:4]
inp = {"idp_metadata_xml": open(meta).read(), "sp_entity_id": sp_entity, "acs_url": acs,
       "current_url": acs}
for kv in sys.argv[4:]:
    k, v = kv.split("=", 1)
    if v == "null":
        v = None
    elif v in ("true", "false"):
        v = v == "true"
    elif v.startswith("@"):
        v = open(v[1:]).read()
    inp[k] = v
json.dump(inp, sys.stdout)
PYEOF
}
sp() { local cmd=$1; shift; sp_input "$@" | "$PY" "$SP" "$cmd"; }

# field JSON KEY: print one top-level field of a JSON object (strings bare, else JSON)
field() {
    "$PY" -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print(v if isinstance(v,str) else json.dumps(v, sort_keys=True))' "$1" "$2"
}

ts() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }

# make_response OUT.xml [RESPONSE_IN_RESPONSE_TO] — writes an unsigned Response whose
# Assertion holds the signature template. With an empty InResponseTo the Response is
# unsolicited (IdP-initiated) and neither Response nor SubjectConfirmationData carry it.
# Element order is the schema's:
#   Response:  Issuer, (Signature), (Extensions), Status, Assertion
#   Assertion: Issuer, Signature, Subject, Conditions, (Advice), AuthnStatement, AttributeStatement
#   Subject:   NameID, SubjectConfirmation
make_response() {
    local out=$1 irt=${2:-} irt_attr=""
    [ -z "$irt" ] || irt_attr=" InResponseTo=\"$irt\""
    local now before later session
    now=$(ts now) before=$(ts '-1 min') later=$(ts '+5 min') session=$(ts '+8 hour')
    cat > "$out" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r$(openssl rand -hex 16)" Version="2.0" IssueInstant="$now" Destination="$ACS_URL"$irt_attr>
  <saml:Issuer>$IDP_ENTITY</saml:Issuer>
  <samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
  <saml:Assertion ID="_a$ASSERTION_ID" Version="2.0" IssueInstant="$now">
    <saml:Issuer>$IDP_ENTITY</saml:Issuer>
    <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:SignedInfo>
        <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
        <ds:Reference URI="#_a$ASSERTION_ID">
          <ds:Transforms>
            <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
            <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
          </ds:Transforms>
          <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
          <ds:DigestValue></ds:DigestValue>
        </ds:Reference>
      </ds:SignedInfo>
      <ds:SignatureValue></ds:SignatureValue>
      <ds:KeyInfo><ds:X509Data></ds:X509Data></ds:KeyInfo>
    </ds:Signature>
    <saml:Subject>
      <saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">alice@example.test</saml:NameID>
      <saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">
        <saml:SubjectConfirmationData$irt_attr NotOnOrAfter="$later" Recipient="$ACS_URL"/>
      </saml:SubjectConfirmation>
    </saml:Subject>
    <saml:Conditions NotBefore="$before" NotOnOrAfter="$later">
      <saml:AudienceRestriction><saml:Audience>$SP_ENTITY</saml:Audience></saml:AudienceRestriction>
    </saml:Conditions>
    <saml:AuthnStatement AuthnInstant="$now" SessionIndex="_s$ASSERTION_ID" SessionNotOnOrAfter="$session">
      <saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext>
    </saml:AuthnStatement>
    <saml:AttributeStatement>
      <saml:Attribute Name="email" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic"><saml:AttributeValue>alice@example.test</saml:AttributeValue></saml:Attribute>
      <saml:Attribute Name="roles" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic"><saml:AttributeValue>admin</saml:AttributeValue><saml:AttributeValue>support</saml:AttributeValue></saml:Attribute>
      <saml:Attribute Name="impersonated" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic"><saml:AttributeValue>false</saml:AttributeValue></saml:Attribute>
    </saml:AttributeStatement>
  </saml:Assertion>
</samlp:Response>
EOF
}

# The sign and verify command lines guise's XML must satisfy (README.md).
sign() { # TEMPLATE OUT [KEY CERT]
    xmlsec1 --sign --privkey-pem "${3:-$WORK/idp.key},${4:-$WORK/idp.crt}" \
        --id-attr:ID "$ASSERTION_NS" --output "$2" "$1"
}
verify() { # FILE: the IdP certificate pinned, KeyInfo ignored
    xmlsec1 --verify --enabled-key-data key-name --pubkey-cert-pem "$WORK/idp.crt" \
        --id-attr:ID "$ASSERTION_NS" --enabled-reference-uris same-doc \
        --node-xpath "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']" \
        "$1" >/dev/null 2>&1
}
verify_trusted() { # FILE: key taken from KeyInfo's certificate, which must be the trusted one
    xmlsec1 --verify --trusted-pem "$WORK/idp.crt" \
        --id-attr:ID "$ASSERTION_NS" --enabled-reference-uris same-doc "$1" >/dev/null 2>&1
}

b64() { base64 -w0 < "$1"; }

expect_ok() { # NAME JSON [KEY EXPECTED]...
    local name=$1 out=$2; shift 2
    if [ "$(field "$out" ok)" != true ]; then
        fail "$name" "expected ok, got: $(field "$out" errors) $(field "$out" reason)"
        return
    fi
    while [ $# -ge 2 ]; do
        local got; got=$(field "$out" "$1")
        if [ "$got" != "$2" ]; then fail "$name" "$1: expected $2, got $got"; return; fi
        shift 2
    done
    pass "$name"
}
expect_fail() { # NAME JSON REASON-SUBSTRING
    local name=$1 out=$2 want=$3 reason
    reason=$(field "$out" reason)
    if [ "$(field "$out" ok)" != false ]; then fail "$name" "expected a rejection, got ok"
    elif [[ "$reason" != *"$want"* ]]; then fail "$name" "reason should contain '$want', got: $reason"
    else pass "$name"; fi
}

# --- cases ------------------------------------------------------------------------------

out=$(sp check-metadata)
expect_ok "check-metadata: schema-valid, both SSO bindings" "$out" entity_id "$IDP_ENTITY" sso_urls \
    "{\"post\": \"$SSO_URL\", \"redirect\": \"$SSO_URL\"}"

# Signed metadata: an ID on EntityDescriptor and an enveloped Signature as its FIRST
# child (schema: Signature?, Extensions?, then the role descriptors).
"$PY" - "$WORK/metadata.xml" "$WORK/metadata-signed.tmpl.xml" <<'PYEOF'
import sys
src, dst = sys.argv[1:]
s = open(src).read()
head, rest = s.split('entityID=', 1)
attr, rest = rest.split(">", 1)
sig = """
  <ds:Signature>
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <ds:Reference URI="#_metadata1">
        <ds:Transforms>
          <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
          <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        </ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <ds:DigestValue></ds:DigestValue>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue></ds:SignatureValue>
    <ds:KeyInfo><ds:X509Data></ds:X509Data></ds:KeyInfo>
  </ds:Signature>"""
open(dst, "w").write(head + 'ID="_metadata1" entityID=' + attr + ">" + sig + rest)
PYEOF
xmlsec1 --sign --privkey-pem "$WORK/idp.key,$WORK/idp.crt" \
    --id-attr:ID urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor \
    --output "$WORK/metadata-signed.xml" "$WORK/metadata-signed.tmpl.xml"
xmlsec1 --verify --enabled-key-data key-name --pubkey-cert-pem "$WORK/idp.crt" \
    --id-attr:ID urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor "$WORK/metadata-signed.xml" >/dev/null 2>&1 \
    && pass "xmlsec1 --verify accepts the signed metadata" || fail "xmlsec1 --verify accepts the signed metadata"
out=$(sp check-metadata idp_metadata_xml="@$WORK/metadata-signed.xml" require_signed=true)
expect_ok "check-metadata: signed metadata verifies" "$out" signed true
sed 's#bindings:HTTP-POST" Location="[^"]*"#bindings:HTTP-POST" Location="https://evil.example/sso"#' \
    "$WORK/metadata-signed.xml" > "$WORK/metadata-tampered.xml"
out=$(sp check-metadata idp_metadata_xml="@$WORK/metadata-tampered.xml")
expect_fail "check-metadata: tampered signed metadata" "$out" "metadata signature does not verify"
out=$(sp check-metadata require_signed=true)
expect_fail "check-metadata: require_signed refuses unsigned metadata" "$out" "carries no EntityDescriptor/ds:Signature"

out=$(sp settings)
expect_ok "settings: strict and merged from metadata" "$out"
[ "$("$PY" -c 'import json,sys; s=json.loads(sys.argv[1])["settings"]; print(s["strict"], s["security"]["wantAssertionsSigned"], s["idp"]["entityId"])' "$out")" = "True True $IDP_ENTITY" ] \
    && pass "settings: strict, wantAssertionsSigned, IdP entityId" || fail "settings: strict, wantAssertionsSigned, IdP entityId" "$out"

# IdP-initiated: no InResponseTo anywhere, request_id null.
ASSERTION_ID=$(openssl rand -hex 16)
make_response "$WORK/idp-init.tmpl.xml"
sign "$WORK/idp-init.tmpl.xml" "$WORK/idp-init.xml"
verify "$WORK/idp-init.xml" && pass "xmlsec1 --verify (pinned key) accepts the signed Response" \
    || fail "xmlsec1 --verify (pinned key) accepts the signed Response"
verify_trusted "$WORK/idp-init.xml" && pass "xmlsec1 --verify (trusted KeyInfo cert) accepts it" \
    || fail "xmlsec1 --verify (trusted KeyInfo cert) accepts it"
out=$(sp validate-response saml_response="$(b64 "$WORK/idp-init.xml")" request_id=null \
    idp_metadata_xml="@$WORK/metadata-signed.xml")
expect_ok "validate-response: IdP-initiated Response, signed metadata" "$out" nameid alice@example.test
out=$(sp validate-response saml_response="$(b64 "$WORK/idp-init.xml")" request_id=null)
expect_ok "validate-response: IdP-initiated Response" "$out" nameid alice@example.test \
    nameid_format urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress issuer "$IDP_ENTITY" \
    attributes '{"email": ["alice@example.test"], "impersonated": ["false"], "roles": ["admin", "support"]}' \
    session_index "_s$ASSERTION_ID"

# Tampering with a signed attribute value breaks the signature.
sed 's#<saml:AttributeValue>support</saml:AttributeValue>#<saml:AttributeValue>superuser</saml:AttributeValue>#' \
    "$WORK/idp-init.xml" > "$WORK/tampered.xml"
cmp -s "$WORK/idp-init.xml" "$WORK/tampered.xml" && fail "tamper: sed changed nothing"
verify "$WORK/tampered.xml" && fail "xmlsec1 --verify rejects a tampered attribute" \
    || pass "xmlsec1 --verify rejects a tampered attribute"
out=$(sp validate-response saml_response="$(b64 "$WORK/tampered.xml")" request_id=null)
expect_fail "validate-response: tampered attribute value" "$out" "Signature validation failed"

# Signed by another key (its own certificate in KeyInfo): rejected.
sign "$WORK/idp-init.tmpl.xml" "$WORK/other.xml" "$WORK/other.key" "$WORK/other.crt"
verify "$WORK/other.xml" && fail "xmlsec1 --verify rejects another signer" || pass "xmlsec1 --verify rejects another signer"
verify_trusted "$WORK/other.xml" && fail "xmlsec1 --verify --trusted-pem rejects another signer" \
    || pass "xmlsec1 --verify --trusted-pem rejects another signer"
out=$(sp validate-response saml_response="$(b64 "$WORK/other.xml")" request_id=null)
expect_fail "validate-response: signed by another key" "$out" "Signature validation failed"

# Unsigned Assertion (template left unsigned): rejected.
sed '/<ds:Signature/,/<\/ds:Signature>/d' "$WORK/idp-init.tmpl.xml" > "$WORK/unsigned.xml"
out=$(sp validate-response saml_response="$(b64 "$WORK/unsigned.xml")" request_id=null)
expect_fail "validate-response: unsigned Assertion" "$out" "The Assertion of the Response is not signed"

# SP-initiated, HTTP-Redirect: the AuthnRequest ID goes into InResponseTo.
out=$(sp authn-request binding=redirect relay_state=/after-login)
expect_ok "authn-request: redirect binding" "$out"
REQ_ID=$(field "$out" request_id)
URL=$(field "$out" url)
[[ "$URL" == "$SSO_URL?SAMLRequest="*"&RelayState=%2Fafter-login" ]] && pass "authn-request: redirect URL shape" \
    || fail "authn-request: redirect URL shape" "$URL"
"$PY" - "$URL" "$REQ_ID" "$ACS_URL" "$SP_ENTITY" <<'PYEOF' && pass "authn-request: SAMLRequest inflates to the AuthnRequest" || fail "authn-request: SAMLRequest inflates to the AuthnRequest"
import base64, sys, urllib.parse, zlib
url, req_id, acs, sp = sys.argv[1:]
q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
xml = zlib.decompress(base64.b64decode(q["SAMLRequest"][0]), -15).decode()
assert 'ID="%s"' % req_id in xml and 'AssertionConsumerServiceURL="%s"' % acs in xml and sp in xml, xml
PYEOF

ASSERTION_ID=$(openssl rand -hex 16)
make_response "$WORK/sp-init.tmpl.xml" "$REQ_ID"
sign "$WORK/sp-init.tmpl.xml" "$WORK/sp-init.xml"
out=$(sp validate-response saml_response="$(b64 "$WORK/sp-init.xml")" request_id="$REQ_ID")
expect_ok "validate-response: SP-initiated, InResponseTo matches" "$out" in_response_to "$REQ_ID"
out=$(sp validate-response saml_response="$(b64 "$WORK/sp-init.xml")" request_id=ONELOGIN_not_the_one)
expect_fail "validate-response: InResponseTo of another request" "$out" "does not match the ID of the AuthNRequest"
out=$(sp validate-response saml_response="$(b64 "$WORK/sp-init.xml")" request_id=null)
expect_fail "validate-response: InResponseTo on an unsolicited Response" "$out" "must not carry InResponseTo"
out=$(sp validate-response saml_response="$(b64 "$WORK/idp-init.xml")" request_id="$REQ_ID")
expect_fail "validate-response: InResponseTo missing when a request was sent" "$out" "expected the AuthnRequest ID"
out=$(sp validate-response saml_response="$(b64 "$WORK/sp-init.xml")" request_id="$REQ_ID" \
    current_url=http://127.0.0.1:9090/elsewhere)
expect_fail "validate-response: posted to another URL than Destination" "$out" "was received at"
out=$(sp validate-response saml_response="$(b64 "$WORK/sp-init.xml")" request_id="$REQ_ID" sp_entity_id=urn:other-sp)
expect_fail "validate-response: Audience is another SP" "$out" "is not a valid audience"

# SP-initiated, HTTP-POST binding.
out=$(sp authn-request binding=post relay_state=xyz)
expect_ok "authn-request: POST binding" "$out" sso_url "$SSO_URL" RelayState xyz
"$PY" -c 'import base64,json,sys; o=json.loads(sys.argv[1]); x=base64.b64decode(o["SAMLRequest"]).decode(); assert o["request_id"] in x and "samlp:AuthnRequest" in x' "$out" \
    && pass "authn-request: POST SAMLRequest is base64 XML" || fail "authn-request: POST SAMLRequest is base64 XML"

# Signed AuthnRequests (an SP key pair).
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 2 -subj "/CN=guise-selftest-sp" \
    -keyout "$WORK/sp.key" -out "$WORK/sp.crt" 2>/dev/null
out=$(sp authn-request binding=redirect relay_state=r authn_requests_signed=true \
    sp_cert_pem="@$WORK/sp.crt" sp_key_pem="@$WORK/sp.key")
URL=$(field "$out" url)
[[ "$URL" == "$SSO_URL?SAMLRequest="*"&RelayState=r&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature="* ]] \
    && pass "authn-request: signed redirect carries SigAlg and Signature" || fail "authn-request: signed redirect carries SigAlg and Signature" "$URL"
"$PY" - "$URL" "$WORK/sp.crt" <<'PYEOF' && pass "authn-request: redirect signature verifies with the SP cert (openssl)" || fail "authn-request: redirect signature verifies with the SP cert (openssl)"
import base64, subprocess, sys, tempfile
url, crt = sys.argv[1:]
query = url.split("?", 1)[1]
signed, sig = query.split("&Signature=")
import urllib.parse
with tempfile.NamedTemporaryFile() as s, tempfile.NamedTemporaryFile() as d, tempfile.NamedTemporaryFile() as k:
    s.write(base64.b64decode(urllib.parse.unquote(sig))); s.flush()
    d.write(signed.encode()); d.flush()
    k.write(subprocess.run(["openssl", "x509", "-in", crt, "-pubkey", "-noout"], check=True, capture_output=True).stdout); k.flush()
    subprocess.run(["openssl", "dgst", "-sha256", "-verify", k.name, "-signature", s.name, d.name], check=True, capture_output=True)
PYEOF
out=$(sp authn-request binding=post authn_requests_signed=true sp_cert_pem="@$WORK/sp.crt" sp_key_pem="@$WORK/sp.key")
"$PY" -c 'import base64,json,sys; o=json.loads(sys.argv[1]); x=base64.b64decode(o["SAMLRequest"]).decode(); assert "<ds:Signature" in x' "$out" \
    && pass "authn-request: signed POST request embeds a ds:Signature" || fail "authn-request: signed POST request embeds a ds:Signature" "$out"
out=$(sp authn-request binding=redirect authn_requests_signed=true)
expect_fail "authn-request: signing without an SP key is refused" "$out" "rejected the settings"

# Schema order: Conditions before Subject is invalid and must be rejected.
ASSERTION_ID=$(openssl rand -hex 16)
make_response "$WORK/order.tmpl.xml"
"$PY" - "$WORK/order.tmpl.xml" <<'PYEOF'
import re, sys
p = sys.argv[1]; s = open(p).read()
subj = re.search(r"\s*<saml:Subject>.*?</saml:Subject>", s, re.S).group(0)
s = s.replace(subj, "", 1).replace("</saml:Conditions>", "</saml:Conditions>" + subj, 1)
open(p, "w").write(s)
PYEOF
sign "$WORK/order.tmpl.xml" "$WORK/order.xml"
out=$(sp validate-response saml_response="$(b64 "$WORK/order.xml")" request_id=null)
expect_fail "validate-response: Subject after Conditions breaks the schema" "$out" "Not match the saml-schema-protocol-2.0.xsd"

# IDs are xs:ID (an NCName): one starting with a digit (a bare UUID) fails the schema.
ASSERTION_ID=$(openssl rand -hex 16)
make_response "$WORK/digit-id.tmpl.xml"
sed -i "s/_a$ASSERTION_ID/1$ASSERTION_ID/g" "$WORK/digit-id.tmpl.xml"
sign "$WORK/digit-id.tmpl.xml" "$WORK/digit-id.xml"
out=$(sp validate-response saml_response="$(b64 "$WORK/digit-id.xml")" request_id=null)
expect_fail "validate-response: an ID starting with a digit is not an xs:ID" "$out" "is not a valid value of the atomic type 'xs:ID'"

# Expired assertion.
ASSERTION_ID=$(openssl rand -hex 16)
make_response "$WORK/expired.tmpl.xml"
sed -i "s/NotOnOrAfter=\"[^\"]*\"/NotOnOrAfter=\"$(ts '-10 min')\"/g" "$WORK/expired.tmpl.xml"
sign "$WORK/expired.tmpl.xml" "$WORK/expired.xml"
out=$(sp validate-response saml_response="$(b64 "$WORK/expired.xml")" request_id=null)
expect_fail "validate-response: expired Conditions" "$out" "expired"

# An IdP error Response (no Assertion): rejected, with the status code reported.
cat > "$WORK/error.xml" <<EOF
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_e$(openssl rand -hex 16)" Version="2.0" IssueInstant="$(ts now)" Destination="$ACS_URL"><saml:Issuer>$IDP_ENTITY</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"/></samlp:StatusCode><samlp:StatusMessage>denied</samlp:StatusMessage></samlp:Status></samlp:Response>
EOF
out=$(sp validate-response saml_response="$(b64 "$WORK/error.xml")" request_id=null)
expect_fail "validate-response: error status" "$out" "was not Success, was Responder -> denied"
[ "$(field "$out" status_code)" = urn:oasis:names:tc:SAML:2.0:status:Responder ] \
    && pass "validate-response: status_code reported" || fail "validate-response: status_code reported" "$out"

# Auto-submitting form as the IdP would send it.
cat > "$WORK/form.html" <<EOF
<!DOCTYPE html><html><body onload="document.forms[0].submit()">
<form method="post" action="$ACS_URL"><input type="hidden" name="SAMLResponse" value="$(b64 "$WORK/sp-init.xml")"/>
<input type="hidden" name="RelayState" value="/after-login"/><noscript><button type="submit">Continue</button></noscript></form></body></html>
EOF
out=$("$PY" -c 'import json,sys; json.dump({"html": open(sys.argv[1]).read()}, sys.stdout)' "$WORK/form.html" | "$PY" "$SP" parse-form)
expect_ok "parse-form: action and fields" "$out" action "$ACS_URL" method post

# Bad input never gives a traceback.
out=$(sp validate-response saml_response=bm90IHhtbA== request_id=null)
expect_fail "validate-response: base64 of non-XML" "$out" ""
[ "$(field "$out" traceback)" = null ] && pass "validate-response: no traceback for bad input" \
    || fail "validate-response: no traceback for bad input" "$out"

echo "selftest: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
