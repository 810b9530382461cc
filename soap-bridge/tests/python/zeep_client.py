"""Drives every operation of the bridge through its WSDL with zeep, a real
WSDL-driven SOAP client. Usage: zeep_client.py WSDL_URL
Prints one line per check and exits non-zero on the first failure."""
import sys

import zeep
from zeep import xsd


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok", what)


def as_dict(result):
    """A session result (struct children as lxml elements) as a dict of texts."""
    if result is None:
        return {}
    return {e.tag.split("}")[-1]: e.text for e in result}


def session_map(fields):
    """A Python dict as the WSDL's apachens:Map of typed values."""
    items = []
    for key, value in fields.items():
        if value is None:
            v = xsd.AnyObject(xsd.String(), None)
        elif isinstance(value, bool):
            v = xsd.AnyObject(xsd.Boolean(), value)
        elif isinstance(value, int):
            v = xsd.AnyObject(xsd.Int(), value)
        else:
            v = xsd.AnyObject(xsd.String(), value)
        items.append({"key": key, "value": v})
    return {"item": items}


client = zeep.Client(sys.argv[1])
svc = client.service
ops = sorted(client.wsdl.bindings[list(client.wsdl.bindings)[0]]._operations)
check(ops == sorted(["status", "getSession", "setSession", "updateSession",
                     "deleteSession", "touchSession", "findByPrincipal"]), f"WSDL operations {ops}")

check("OK" in svc.status(), "status")

sid = svc.setSession(session_map({"uid": "zeep-user", "cn": "Z\u00e9ep <&>", "n": 42}))
check(isinstance(sid, str) and len(sid) == 32, f"setSession -> {sid}")

got = as_dict(svc.getSession(sid))
check(got.get("uid") == "zeep-user" and got.get("n") == "42" and got.get("_session_id") == sid,
      f"getSession {got}")

check(svc.updateSession(sid, session_map({"mail": "z@example.org"})) is True, "updateSession")
got = as_dict(svc.getSession(sid))
check(got.get("mail") == "z@example.org" and got.get("uid") == "zeep-user", f"updated {got}")

check(svc.touchSession(sid) is True, "touchSession")

found = as_dict(svc.findByPrincipal("zeep-user"))
check(found.get("_session_id") == sid, f"findByPrincipal {found}")

check(svc.deleteSession(sid) is True, "deleteSession")
check(svc.deleteSession(sid) is False, "deleteSession again")
check(as_dict(svc.getSession(sid)) == {}, "deleted session reads empty")

try:
    svc.getSession("not-hex!")
    check(False, "invalid id must fault")
except zeep.exceptions.Fault as f:
    check("Invalid session ID" in f.message and f.code.endswith("Client"), f"invalid id fault {f.code}")

print("PASS")
