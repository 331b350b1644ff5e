#!/usr/bin/env python3
"""A strict, independent SAML 2.0 service provider for guise's tests.

It wraps python3-saml (onelogin.saml2) in STRICT mode and adds the Web SSO profile
checks that python3-saml leaves out. Run it with the virtualenv that
`scripts/ensure-test-tools` prints:

    $VENV/bin/python tests/saml/sp.py SUBCOMMAND < input.json

Every subcommand reads one JSON object on stdin and writes one JSON object on
stdout. A protocol or validation failure is exit 0 with
{"ok": false, "errors": [...], "reason": "..."}; exit 2 only for bad usage
(unknown subcommand, stdin not a JSON object). See tests/saml/README.md.

Subcommands:
  settings           the merged python3-saml settings dict
  check-metadata     schema-validate and summarise the IdP metadata
  authn-request      an AuthnRequest for the HTTP-Redirect or HTTP-POST binding
  validate-response  validate a base64 SAMLResponse as posted to the ACS URL
  parse-form         extract action and fields from an auto-submitting HTML form
"""

import base64
import binascii
import copy
import html.parser
import json
import sys
import traceback
import urllib.parse

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_WITH_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

# Settings every run uses; the input may add to "security" (see README) but the
# defaults below are the contract guise is tested against.
STRICT_SECURITY = {
    "authnRequestsSigned": False,
    "logoutRequestSigned": False,
    "logoutResponseSigned": False,
    "signMetadata": False,
    "wantMessagesSigned": False,
    "wantAssertionsSigned": True,
    "wantAssertionsEncrypted": False,
    "wantNameId": True,
    "wantNameIdEncrypted": False,
    "wantAttributeStatement": True,
    "requestedAuthnContext": False,
    "rejectDeprecatedAlgorithm": True,
    "allowRepeatAttributeName": False,
    "signatureAlgorithm": C.RSA_SHA256,
    "digestAlgorithm": C.SHA256,
}


class Failure(Exception):
    """A failure reported as {"ok": false, ...}, never as a traceback."""

    def __init__(self, errors, reason, **extra):
        super().__init__(reason)
        self.errors = list(errors)
        self.reason = reason
        self.extra = extra


class UsageError(Exception):
    pass


def schema_errors(xml, xsd):
    """The schema errors python3-saml only prints in debug mode ("line N: message")."""
    import os
    import lxml.etree
    import onelogin.saml2

    try:
        doc = OneLogin_Saml2_XML.to_etree(xml)
        path = os.path.join(os.path.dirname(onelogin.saml2.__file__), "schemas", xsd)
        schema = lxml.etree.XMLSchema(lxml.etree.parse(path))
        if schema.validate(doc):
            return []
        return ["line %d: %s" % (e.line, e.message) for e in schema.error_log]
    except Exception as err:
        return ["%s: %s" % (type(err).__name__, err)]


# --------------------------------------------------------------------------- settings


def _pem_body(pem):
    """python3-saml accepts PEM with or without armour; pass it through trimmed."""
    return pem.strip() if isinstance(pem, str) else None


def _parse_idp_metadata(xml, binding):
    """IdP part of the settings, taking the SSO endpoint of `binding` (or, when the
    metadata has none for it and `binding` is only a preference, the other one)."""
    try:
        data = OneLogin_Saml2_IdPMetadataParser.parse(
            xml, required_sso_binding=binding, required_slo_binding=C.BINDING_HTTP_REDIRECT
        )
    except Exception as err:  # lxml syntax errors, DTD refused, ...
        raise Failure(["invalid_idp_metadata"], "IdP metadata is not parseable XML: %s" % err)
    if "idp" not in data:
        raise Failure(
            ["invalid_idp_metadata"],
            "IdP metadata has no md:EntityDescriptor with an md:IDPSSODescriptor",
        )
    return data


def build_settings(inp, sso_binding=C.BINDING_HTTP_REDIRECT, binding_required=False):
    for key in ("idp_metadata_xml", "sp_entity_id", "acs_url"):
        if not isinstance(inp.get(key), str) or not inp[key]:
            raise Failure(["invalid_input"], "input needs a non-empty string %r" % key)

    idp_data = _parse_idp_metadata(inp["idp_metadata_xml"], sso_binding)
    if "singleSignOnService" not in idp_data["idp"] and not binding_required:
        other = (
            C.BINDING_HTTP_POST if sso_binding == C.BINDING_HTTP_REDIRECT else C.BINDING_HTTP_REDIRECT
        )
        alt = _parse_idp_metadata(inp["idp_metadata_xml"], other)
        if "singleSignOnService" in alt["idp"]:
            idp_data = alt

    sp = {
        "entityId": inp["sp_entity_id"],
        "assertionConsumerService": {"url": inp["acs_url"], "binding": C.BINDING_HTTP_POST},
        "NameIDFormat": C.NAMEID_UNSPECIFIED,
        "x509cert": _pem_body(inp.get("sp_cert_pem")) or "",
        "privateKey": _pem_body(inp.get("sp_key_pem")) or "",
    }
    if inp.get("sls_url"):
        sp["singleLogoutService"] = {"url": inp["sls_url"], "binding": C.BINDING_HTTP_REDIRECT}

    base = {
        "strict": True,
        "debug": False,
        "sp": sp,
        "idp": {},
        "security": copy.deepcopy(STRICT_SECURITY),
    }
    merged = OneLogin_Saml2_IdPMetadataParser.merge_settings(base, idp_data)

    # Explicit input wins over what the metadata says (WantAuthnRequestsSigned,
    # NameIDFormat), and the caller may add security overrides.
    if "authn_requests_signed" in inp and inp["authn_requests_signed"] is not None:
        merged["security"]["authnRequestsSigned"] = bool(inp["authn_requests_signed"])
    if inp.get("name_id_format"):
        merged["sp"]["NameIDFormat"] = inp["name_id_format"]
    overrides = inp.get("security") or {}
    if not isinstance(overrides, dict):
        raise Failure(["invalid_input"], "'security' must be an object")
    merged["security"].update(overrides)
    if inp.get("strict") is False:  # only for debugging a failing test by hand
        merged["strict"] = False
    return merged


def settings_object(settings_dict):
    try:
        return OneLogin_Saml2_Settings(settings_dict, sp_validation_only=False)
    except Exception as err:
        errors = getattr(err, "errors", None) or ["invalid_settings"]
        raise Failure(errors, "python3-saml rejected the settings: %s" % err)


# --------------------------------------------------------------------------- requests


def fake_request(current_url, post_data=None, get_data=None):
    url = urllib.parse.urlsplit(current_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise Failure(["invalid_input"], "current_url must be an absolute http(s) URL: %r" % current_url)
    return {
        "https": "on" if url.scheme == "https" else "off",
        "http_host": url.netloc,
        "script_name": url.path,
        "get_data": get_data or dict(urllib.parse.parse_qsl(url.query)),
        "post_data": post_data or {},
    }


# --------------------------------------------------------------------------- subcommands


def cmd_settings(inp):
    merged = build_settings(inp)
    settings_object(merged)  # validate
    return {"ok": True, "settings": merged}


def cmd_check_metadata(inp):
    xml = inp.get("idp_metadata_xml")
    if not isinstance(xml, str) or not xml:
        raise Failure(["invalid_input"], "input needs a non-empty string 'idp_metadata_xml'")
    try:
        doc = OneLogin_Saml2_XML.to_etree(xml)
    except Exception as err:
        raise Failure(["invalid_idp_metadata"], "IdP metadata is not parseable XML: %s" % err)
    res = OneLogin_Saml2_XML.validate_xml(doc, "saml-schema-metadata-2.0.xsd", False)
    if isinstance(res, str):
        errs = schema_errors(xml, "saml-schema-metadata-2.0.xsd")
        raise Failure(
            ["invalid_xml_format"],
            "IdP metadata does not match saml-schema-metadata-2.0.xsd: %s" % "; ".join(errs or [res]),
            schema_errors=errs,
        )

    out = {"ok": True}
    for name, binding in (("redirect", C.BINDING_HTTP_REDIRECT), ("post", C.BINDING_HTTP_POST)):
        data = _parse_idp_metadata(xml, binding)
        idp = data["idp"]
        out["entity_id"] = idp.get("entityId")
        out.setdefault("sso_urls", {})[name] = idp.get("singleSignOnService", {}).get("url")
        out["x509cert"] = idp.get("x509cert")
        out["x509cert_multi"] = idp.get("x509certMulti")
        out["want_authn_requests_signed"] = data.get("security", {}).get("authnRequestsSigned")
        out["name_id_format"] = data.get("sp", {}).get("NameIDFormat")
    # A signed EntityDescriptor must verify: with idp_cert_pem when given, else with the
    # metadata's own signing certificate (which proves integrity, not origin).
    sigs = OneLogin_Saml2_XML.query(doc, "/md:EntityDescriptor/ds:Signature")
    out["signed"] = bool(sigs)
    if sigs:
        refs = OneLogin_Saml2_XML.query(sigs[0], "./ds:SignedInfo/ds:Reference")
        root_id = doc.get("ID")
        if len(refs) != 1 or not root_id or refs[0].get("URI") != "#" + root_id:
            raise Failure(
                ["invalid_metadata_signature"],
                "the metadata Signature must hold one Reference to '#' + EntityDescriptor/@ID (ID %r)" % root_id,
                **out,
            )
        cert = inp.get("idp_cert_pem") or out["x509cert"] or ((out["x509cert_multi"] or {}).get("signing") or [None])[0]
        if not cert:
            raise Failure(["invalid_metadata_signature"], "signed metadata without a signing certificate", **out)
        try:
            OneLogin_Saml2_Utils.validate_metadata_sign(
                xml, OneLogin_Saml2_Utils.format_cert(cert), raise_exceptions=True
            )
        except Exception as err:
            raise Failure(["invalid_metadata_signature"], "metadata signature does not verify: %s" % err, **out)
    elif inp.get("require_signed"):
        raise Failure(["unsigned_metadata"], "the metadata carries no EntityDescriptor/ds:Signature", **out)
    nodes = OneLogin_Saml2_XML.query(doc, "//md:IDPSSODescriptor")
    out["protocol_support_enumeration"] = nodes[0].get("protocolSupportEnumeration") if nodes else None
    out["name_id_formats"] = [
        OneLogin_Saml2_XML.element_text(n) for n in OneLogin_Saml2_XML.query(doc, "//md:IDPSSODescriptor/md:NameIDFormat")
    ]
    return out


def cmd_authn_request(inp):
    binding = inp.get("binding", "redirect")
    if binding not in ("redirect", "post"):
        raise Failure(["invalid_input"], "binding must be 'redirect' or 'post'")
    saml_binding = C.BINDING_HTTP_REDIRECT if binding == "redirect" else C.BINDING_HTTP_POST
    merged = build_settings(inp, sso_binding=saml_binding, binding_required=True)
    if "singleSignOnService" not in merged["idp"]:
        raise Failure(
            ["idp_sso_url_not_found"],
            "IdP metadata has no SingleSignOnService with Binding=%s" % saml_binding,
        )
    auth = OneLogin_Saml2_Auth(fake_request(inp["acs_url"]), old_settings=settings_object(merged))
    settings = auth.get_settings()

    req = OneLogin_Saml2_Authn_Request(
        settings,
        force_authn=bool(inp.get("force_authn", False)),
        is_passive=bool(inp.get("is_passive", False)),
        set_nameid_policy=bool(inp.get("set_nameid_policy", True)),
    )
    relay_state = inp.get("relay_state")
    security = settings.get_security_data()
    signed = bool(security.get("authnRequestsSigned"))
    sso_url = settings.get_idp_data()["singleSignOnService"]["url"]
    out = {"ok": True, "request_id": req.get_id(), "binding": binding, "sso_url": sso_url, "signed": signed}

    if binding == "redirect":
        params = {"SAMLRequest": req.get_request(deflate=True)}
        if relay_state is not None:
            params["RelayState"] = relay_state
        if signed:
            auth.add_request_signature(params, security["signatureAlgorithm"])
            # Conventional order (SAMLRequest, RelayState, SigAlg, Signature): the
            # signed octets are then the query string up to "&Signature=".
            params = {k: params[k] for k in ("SAMLRequest", "RelayState", "SigAlg", "Signature") if k in params}
        out["url"] = OneLogin_Saml2_Utils.redirect(sso_url, params, True)
        out["xml"] = req.get_xml()
    else:
        xml = req.get_xml()
        if signed:
            xml = OneLogin_Saml2_Utils.add_sign(
                xml,
                settings.get_sp_key(),
                settings.get_sp_cert(),
                False,
                security["signatureAlgorithm"],
                security["digestAlgorithm"],
            )
            if isinstance(xml, bytes):
                xml = xml.decode("utf-8")
        out["SAMLRequest"] = OneLogin_Saml2_Utils.b64encode(xml)
        out["RelayState"] = relay_state
        out["xml"] = xml
    return out


def _decode_response(b64):
    try:
        return base64.b64decode(b64, validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _profile_checks(doc, inp, request_id):
    """Web Browser SSO profile rules (SAML profiles 4.1.4.2/4.1.4.3) and guise's own
    contract, checked after python3-saml accepted the Response. Returns violations."""
    v = []
    q = OneLogin_Saml2_XML.query
    acs_url = inp["acs_url"]
    sp_entity_id = inp["sp_entity_id"]
    response = doc
    assertion = q(doc, "/samlp:Response/saml:Assertion")[0]

    destination = response.get("Destination")
    current = inp.get("current_url") or acs_url
    if destination is not None and destination != current.split("?", 1)[0]:
        v.append("Response Destination %r is not the URL it was posted to %r" % (destination, current))

    irt = response.get("InResponseTo")
    if request_id is not None:
        if irt != request_id:
            v.append("Response InResponseTo is %r, expected the AuthnRequest ID %r" % (irt, request_id))
    elif irt is not None:
        v.append("unsolicited (IdP-initiated) Response must not carry InResponseTo (got %r)" % irt)

    issuers = q(doc, "/samlp:Response/saml:Issuer")
    if issuers and issuers[0].get("Format") not in (None, C.NAMEID_ENTITY):
        v.append("Response Issuer Format must be omitted or entity (got %r)" % issuers[0].get("Format"))
    a_issuer = q(assertion, "./saml:Issuer")
    if a_issuer and a_issuer[0].get("Format") not in (None, C.NAMEID_ENTITY):
        v.append("Assertion Issuer Format must be omitted or entity (got %r)" % a_issuer[0].get("Format"))

    # Bearer SubjectConfirmation with Recipient == ACS URL, NotOnOrAfter, no NotBefore,
    # and InResponseTo matching the request (absent when unsolicited).
    good = False
    why = []
    for scd in q(assertion, "./saml:Subject/saml:SubjectConfirmation[@Method='%s']/saml:SubjectConfirmationData" % C.CM_BEARER):
        problems = []
        if scd.get("Recipient") != acs_url:
            problems.append("Recipient %r != ACS URL %r" % (scd.get("Recipient"), acs_url))
        if not scd.get("NotOnOrAfter"):
            problems.append("no NotOnOrAfter")
        if scd.get("NotBefore"):
            problems.append("NotBefore must not be present on a bearer SubjectConfirmationData")
        scd_irt = scd.get("InResponseTo")
        if request_id is not None and scd_irt != request_id:
            problems.append("InResponseTo %r != AuthnRequest ID %r" % (scd_irt, request_id))
        if request_id is None and scd_irt is not None:
            problems.append("InResponseTo %r present on an unsolicited Response" % scd_irt)
        if problems:
            why.append("; ".join(problems))
        else:
            good = True
    if not good:
        v.append("no bearer SubjectConfirmationData satisfies the Web SSO profile: %s" % (" | ".join(why) or "none present"))

    audiences = [
        OneLogin_Saml2_XML.element_text(n)
        for n in q(assertion, "./saml:Conditions/saml:AudienceRestriction/saml:Audience")
    ]
    if sp_entity_id not in audiences:
        v.append("Conditions/AudienceRestriction must name the SP entity ID %r (got %r)" % (sp_entity_id, audiences))

    # guise signs the Assertion with RSA-SHA256 over exclusive c14n, SHA-256 digest.
    sigs = q(assertion, "./ds:Signature")
    if len(sigs) != 1:
        v.append("the Assertion must carry exactly one enveloped ds:Signature (found %d)" % len(sigs))
    else:
        sig = sigs[0]
        c14n = [n.get("Algorithm") for n in q(sig, "./ds:SignedInfo/ds:CanonicalizationMethod")]
        meth = [n.get("Algorithm") for n in q(sig, "./ds:SignedInfo/ds:SignatureMethod")]
        refs = q(sig, "./ds:SignedInfo/ds:Reference")
        if c14n != [EXC_C14N]:
            v.append("CanonicalizationMethod must be exclusive c14n %s (got %r)" % (EXC_C14N, c14n))
        if meth != [C.RSA_SHA256]:
            v.append("SignatureMethod must be %s (got %r)" % (C.RSA_SHA256, meth))
        if len(refs) != 1:
            v.append("SignedInfo must hold exactly one Reference (got %d)" % len(refs))
        else:
            ref = refs[0]
            if ref.get("URI") != "#" + (assertion.get("ID") or ""):
                v.append("Reference URI %r must be '#' + Assertion ID %r" % (ref.get("URI"), assertion.get("ID")))
            transforms = [n.get("Algorithm") for n in q(ref, "./ds:Transforms/ds:Transform")]
            if transforms != [ENVELOPED, EXC_C14N]:
                v.append("Transforms must be [enveloped-signature, exc-c14n] (got %r)" % transforms)
            digest = [n.get("Algorithm") for n in q(ref, "./ds:DigestMethod")]
            if digest != [C.SHA256]:
                v.append("DigestMethod must be %s (got %r)" % (C.SHA256, digest))
    return v


def cmd_validate_response(inp):
    saml_response = inp.get("saml_response")
    if not isinstance(saml_response, str) or not saml_response:
        raise Failure(["invalid_input"], "input needs a non-empty string 'saml_response' (base64)")
    request_id = inp.get("request_id")  # None (null or absent): IdP-initiated
    current_url = inp.get("current_url") or inp.get("acs_url")

    xml = _decode_response(saml_response)
    extra = {"response_xml": xml, "status_code": None}
    try:  # the top-level StatusCode, so that a test can tell an IdP error from a bad Response
        codes = OneLogin_Saml2_XML.query(
            OneLogin_Saml2_XML.to_etree(xml), "/samlp:Response/samlp:Status/samlp:StatusCode"
        )
        extra["status_code"] = codes[0].get("Value") if codes else None
    except Exception:
        pass

    merged = build_settings(inp)
    request = fake_request(current_url, post_data={"SAMLResponse": saml_response})
    auth = OneLogin_Saml2_Auth(request, old_settings=settings_object(merged))
    try:
        auth.process_response(request_id=request_id)
    except Exception as err:  # undecodable base64, XML syntax error, ...
        raise Failure(auth.get_errors() or ["invalid_response"], "%s: %s" % (type(err).__name__, err), **extra)

    if auth.get_errors() or not auth.is_authenticated():
        reason = auth.get_last_error_reason() or "not authenticated"
        if "saml-schema-protocol-2.0.xsd" in reason:
            extra["schema_errors"] = schema_errors(xml, "saml-schema-protocol-2.0.xsd")
            reason = "%s: %s" % (reason, "; ".join(extra["schema_errors"]))
        raise Failure(auth.get_errors() or ["not_authenticated"], reason, **extra)

    doc = OneLogin_Saml2_XML.to_etree(xml)
    if inp.get("profile_checks", True):
        violations = _profile_checks(doc, inp, request_id)
        if violations:
            raise Failure(["profile_violation"], "; ".join(violations), violations=violations, **extra)

    q = OneLogin_Saml2_XML.query
    issuer_nodes = q(doc, "/samlp:Response/saml:Assertion/saml:Issuer")
    resp_issuer = q(doc, "/samlp:Response/saml:Issuer")
    exp = auth.get_session_expiration()
    return {
        "ok": True,
        "nameid": auth.get_nameid(),
        "nameid_format": auth.get_nameid_format(),
        "nameid_name_qualifier": auth.get_nameid_nq(),
        "nameid_sp_name_qualifier": auth.get_nameid_spnq(),
        "attributes": auth.get_attributes(),
        "friendly_name_attributes": auth.get_friendlyname_attributes(),
        "session_index": auth.get_session_index(),
        "session_not_on_or_after": exp,
        "issuer": OneLogin_Saml2_XML.element_text(issuer_nodes[0]) if issuer_nodes else None,
        "response_issuer": OneLogin_Saml2_XML.element_text(resp_issuer[0]) if resp_issuer else None,
        "response_id": auth.get_last_message_id(),
        "assertion_id": auth.get_last_assertion_id(),
        "in_response_to": auth.get_last_response_in_response_to(),
        "destination": doc.get("Destination"),
        "authn_contexts": auth.get_last_authn_contexts(),
        "assertion_not_on_or_after": auth.get_last_assertion_not_on_or_after(),
        "status_code": extra["status_code"],
        "response_xml": xml,
    }


class _FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": (a.get("method") or "get").lower(), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""

    handle_startendtag = handle_starttag


def cmd_parse_form(inp):
    page = inp.get("html")
    if not isinstance(page, str):
        raise Failure(["invalid_input"], "input needs a string 'html'")
    p = _FormParser()
    p.feed(page)
    p.close()
    if len(p.forms) != 1:
        raise Failure(["invalid_form"], "expected exactly one <form>, found %d" % len(p.forms))
    form = p.forms[0]
    if form["method"] != "post":
        raise Failure(["invalid_form"], "form method must be POST (got %r)" % form["method"])
    return {"ok": True, **form}


COMMANDS = {
    "settings": cmd_settings,
    "check-metadata": cmd_check_metadata,
    "authn-request": cmd_authn_request,
    "validate-response": cmd_validate_response,
    "parse-form": cmd_parse_form,
}


def _json_default(o):
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    return str(o)


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        sys.stderr.write("usage: sp.py {%s} < input.json\n" % ",".join(COMMANDS))
        return 2
    try:
        inp = json.load(sys.stdin)
        if not isinstance(inp, dict):
            raise ValueError("stdin must hold a JSON object")
    except ValueError as err:
        sys.stderr.write("sp.py: %s\n" % err)
        return 2
    try:
        out = COMMANDS[argv[1]](inp)
    except Failure as f:
        out = {**f.extra, "ok": False, "errors": f.errors, "reason": f.reason}
    except Exception as err:  # a bug here or an input python3-saml chokes on
        out = {
            "ok": False,
            "errors": ["exception"],
            "reason": "%s: %s" % (type(err).__name__, err),
            "traceback": traceback.format_exc(),
        }
    json.dump(out, sys.stdout, default=_json_default, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
