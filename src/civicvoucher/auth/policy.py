"""Route rules: for every API route, which roles may call it and what its target is.

The API's route class looks each route up here by name before running it; a route with no rule
refuses to start the app (and the role-matrix test walks every route against this table).
Scope inside the route (which organisation, merchant or member) is decided by ``scope``.
"""

from __future__ import annotations

from dataclasses import dataclass

from civicvoucher.auth.roles import Role

R = Role
ORG_ADMINS = frozenset({R.PROVINCE_ADMIN, R.CITY_ADMIN, R.COUNTY_ADMIN, R.UNION_ADMIN})
FEDERATION_ADMINS = frozenset({R.PROVINCE_ADMIN, R.CITY_ADMIN, R.COUNTY_ADMIN})
ORG_READERS = ORG_ADMINS | {R.AUDITOR}
MERCHANT_STAFF = frozenset({R.MERCHANT_ADMIN, R.CASHIER})
AUTHENTICATED = frozenset(Role)


@dataclass(frozen=True)
class Rule:
    """``target`` says what the route acts on, for scope: org, merchant, member, redemption,
    self (the caller's own things), global (no scope: programs, province-wide runs)."""

    roles: frozenset[Role]
    target: str
    personal_data: bool = False  # reading it is audited
    idempotent_key: bool | None = None  # None: required for POST/PUT/PATCH/DELETE


@dataclass(frozen=True)
class Public:
    """A route without a bearer token: how it authenticates instead."""

    how: str


PUBLIC: dict[str, Public] = {
    "login": Public("password, rate-limited and locked out after repeated failures"),
    "channel_callback": Public("HMAC signature of the channel with a timestamp window"),
    "health": Public("nothing: liveness only"),
}

RULES: dict[str, Rule] = {
    # auth
    "logout": Rule(AUTHENTICATED, "self"),
    "whoami": Rule(AUTHENTICATED, "self"),
    "create_api_token": Rule(AUTHENTICATED - {R.MEMBER}, "self"),
    "revoke_api_token": Rule(AUTHENTICATED, "self"),
    "create_user": Rule(ORG_ADMINS | {R.MERCHANT_ADMIN}, "org"),
    # organisations and funds
    "list_orgs": Rule(ORG_READERS | {R.ANALYST}, "org"),
    "get_org_detail": Rule(ORG_READERS | {R.ANALYST}, "org"),
    "create_org": Rule(FEDERATION_ADMINS, "org"),
    "import_orgs_upload": Rule(FEDERATION_ADMINS, "org"),
    "get_fund_balance": Rule(ORG_READERS, "org"),
    "create_deposit": Rule(ORG_ADMINS, "org"),
    # members (personal data: masked, and every read audited)
    "list_members": Rule(ORG_READERS, "org", personal_data=True),
    "get_member": Rule(ORG_READERS, "member", personal_data=True),
    "import_members_upload": Rule(ORG_ADMINS, "org"),
    "set_member_status": Rule(ORG_ADMINS, "member"),
    "set_member_phone": Rule(ORG_ADMINS, "member"),
    "transfer_member_route": Rule(ORG_ADMINS, "member"),
    # programs
    "list_programs": Rule(AUTHENTICATED - {R.CHANNEL, R.MEMBER}, "global"),
    "get_program_detail": Rule(AUTHENTICATED - {R.CHANNEL, R.MEMBER}, "global"),
    "create_program_route": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
    # issuance
    "create_issuance": Rule(ORG_ADMINS, "org"),
    "list_issuances": Rule(ORG_READERS, "org"),
    "get_issuance": Rule(ORG_READERS, "org"),
    # merchants
    "list_merchants": Rule(FEDERATION_ADMINS | {R.AUDITOR} | MERCHANT_STAFF, "merchant"),
    "get_merchant": Rule(FEDERATION_ADMINS | {R.AUDITOR} | MERCHANT_STAFF, "merchant"),
    "register_merchant_route": Rule(FEDERATION_ADMINS, "merchant"),
    "set_merchant_status": Rule(FEDERATION_ADMINS, "merchant"),
    # spending
    "lookup_voucher": Rule(MERCHANT_STAFF, "merchant", idempotent_key=False),
    "create_redemption": Rule(MERCHANT_STAFF, "merchant"),
    "list_redemptions": Rule(ORG_READERS | MERCHANT_STAFF, "redemption"),
    "get_redemption": Rule(ORG_READERS | MERCHANT_STAFF, "redemption"),
    "capture_redemption": Rule(MERCHANT_STAFF, "redemption"),
    "void_redemption": Rule(MERCHANT_STAFF, "redemption"),
    "refund_redemption": Rule(frozenset({R.MERCHANT_ADMIN}) | FEDERATION_ADMINS, "redemption"),
    # province-wide runs
    "run_expiry": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
    "create_extension": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
    "run_settlement": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
    "list_settlement_runs": Rule(frozenset({R.PROVINCE_ADMIN, R.AUDITOR}), "global"),
    "list_settlement_batches": Rule(FEDERATION_ADMINS | {R.AUDITOR, R.MERCHANT_ADMIN},
                                    "merchant"),
    "verify_ledger": Rule(frozenset({R.PROVINCE_ADMIN, R.AUDITOR}), "global"),
    # reports: aggregates only
    "summary_report": Rule(ORG_READERS | {R.ANALYST}, "org"),
    # issue 10 (report): a program's policy report over the caller's subtree
    "program_report": Rule(ORG_READERS | {R.ANALYST}, "org"),
    # audit log
    "list_audit": Rule(frozenset({R.PROVINCE_ADMIN, R.AUDITOR}), "org"),
    "verify_audit": Rule(frozenset({R.PROVINCE_ADMIN, R.AUDITOR}), "global"),
    # a member's own vouchers
    "my_vouchers": Rule(frozenset({R.MEMBER}), "self", personal_data=True),
    "my_voucher_qr": Rule(frozenset({R.MEMBER}), "self"),
}


# --- issue 9, task "credentials": member invitations and activation, deposit approvals ------
# Who may invite a member is who may create one (scope._CREATABLE); approving or rejecting a
# deposit takes a federation admin, and funds.approvals.may_check decides which one.
PUBLIC["activate_member"] = Public("a one-time activation code, rate-limited per IP and "
                                   "per member")
RULES.update({
    "invite_member": Rule(frozenset({R.PROVINCE_ADMIN, R.COUNTY_ADMIN, R.UNION_ADMIN}),
                          "member"),
    "list_deposit_requests": Rule(ORG_READERS, "org"),
    "get_deposit_request": Rule(ORG_READERS, "org"),
    "approve_deposit_request": Rule(FEDERATION_ADMINS, "org"),
    "reject_deposit_request": Rule(FEDERATION_ADMINS, "org"),
})

# issue 10 item 8: a program can be updated before launch (PUT /programs/{program}), by whom
# may define one
RULES["update_program_route"] = Rule(frozenset({R.PROVINCE_ADMIN}), "global")


def rule_for(route_name: str) -> Rule | Public | None:
    return RULES.get(route_name) or PUBLIC.get(route_name)

# --- issue 11: the web console (console/), the same table for its pages ---------------------
# A console page's rule is its route's name; a page whose name is missing here refuses to
# start the app, as an API route does. Public pages authenticate the way they say.
PUBLIC.update({
    "console_login_page": Public("nothing: the sign-in form (with its double-submit token)"),
    "console_login": Public("password through auth.login: the API's caps, lockout, backoff"),
    "console_language": Public("the CSRF token of the session or of the sign-in form"),
})
RULES.update({
    "console_home": Rule(AUTHENTICATED, "self"),
    "console_logout": Rule(AUTHENTICATED, "self"),
})

# --- issue 11, member ---
# The member's phone pages (console/pages/member.py): their own vouchers, QR, history; the
# public list of active merchants. Members only.
RULES.update({
    "console_member_vouchers": Rule(frozenset({R.MEMBER}), "self", personal_data=True),
    "console_member_voucher": Rule(frozenset({R.MEMBER}), "self"),
    "console_member_voucher_qr": Rule(frozenset({R.MEMBER}), "self"),
    "console_member_merchants": Rule(frozenset({R.MEMBER}), "self"),
    "console_member_history": Rule(frozenset({R.MEMBER}), "self", personal_data=True),
})

# --- issue 11, tracepage ---
# The voucher trace (溯源): org admins and auditors, in their subtree; both the search and the
# trace read personal data (masked) and are audited. The search is a POST (an ID number stays
# out of URLs) that changes nothing: no idempotency key.
RULES.update({
    "console_trace": Rule(ORG_READERS, "org"),
    "console_trace_search": Rule(ORG_READERS, "org", personal_data=True, idempotent_key=False),
    "console_trace_voucher": Rule(ORG_READERS, "org", personal_data=True),
})

# --- issue 11, cashier ---
# The cashier's phone page (console/pages/cashier.py): merchant staff, their own merchant. The
# settlement statements follow the API's list_settlement_batches (merchant admins, not cashiers).
RULES.update({
    "console_cashier": Rule(MERCHANT_STAFF, "merchant"),
    "console_cashier_preview": Rule(MERCHANT_STAFF, "merchant", idempotent_key=False),
    "console_cashier_redeem": Rule(MERCHANT_STAFF, "merchant"),
    "console_cashier_receipt": Rule(MERCHANT_STAFF, "redemption"),
    "console_cashier_back": Rule(MERCHANT_STAFF, "merchant"),
    "console_cashier_settlement": Rule(frozenset({R.MERCHANT_ADMIN}), "merchant"),
})

# --- issue 11, dashpage ---
# The dashboard page and the figures it polls: who may read the API's program report, over
# their own subtree (console/pages/dashpage.py chooses it with scope.scoped_root).
RULES.update({
    "console_dashboard": Rule(ORG_READERS | {R.ANALYST}, "org"),
    "console_dashboard_figures": Rule(ORG_READERS | {R.ANALYST}, "org"),
})

# --- issue 11, imports ---
# Organisations, members and roster imports in the console (console/pages/imports.py): the
# same roles as the API routes they stand beside (list_orgs + get_fund_balance, list_members,
# set_member_status, import_members_upload). No rule reveals an ID number: none is stored.
RULES.update({
    "console_orgs": Rule(ORG_READERS, "org"),
    "console_org_children": Rule(ORG_READERS, "org"),
    "console_members": Rule(ORG_READERS, "org", personal_data=True),
    "console_members_export": Rule(ORG_READERS, "org", personal_data=True),
    "console_member_status": Rule(ORG_ADMINS, "member"),
    "console_import_members": Rule(ORG_ADMINS, "org"),
    "console_import_members_preview": Rule(ORG_ADMINS, "org"),
    "console_import_members_confirm": Rule(ORG_ADMINS, "org"),
})

# --- issue 11, auditpage ---
# The audit log viewer (console/pages/auditpage.py): who may read the API's list_audit, in the
# same scope (the province everything, an auditor their subtree's actors); the chain's
# verification as the API's verify_audit (global, run only when asked).
RULES.update({
    "console_audit": Rule(frozenset({R.PROVINCE_ADMIN, R.AUDITOR}), "org"),
    "console_audit_verify": Rule(frozenset({R.PROVINCE_ADMIN, R.AUDITOR}), "global"),
})

# --- issue 11, programs ---
# Issuance in the console (console/pages/programs.py): the API's create_issuance roles, over
# the user's subtree. The funding check is a POST that reads only: no idempotency key.
RULES.update({
    "console_issue": Rule(ORG_ADMINS, "org"),
    "console_issue_preview": Rule(ORG_ADMINS, "org", idempotent_key=False),
    "console_issue_confirm": Rule(ORG_ADMINS, "org"),
    "console_issuance": Rule(ORG_ADMINS, "org"),
})
# programs: the list and a program's page as the API's list_programs/get_program_detail; the
# deadline extension as create_extension (the province admin)
RULES.update({
    "console_programs": Rule(AUTHENTICATED - {R.CHANNEL, R.MEMBER}, "global"),
    "console_program": Rule(AUTHENTICATED - {R.CHANNEL, R.MEMBER}, "global"),
    "console_program_extend": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
})

# issue 11, progform: the program form (the API's create_program_route/update_program_route:
# the province admin) and a whole subtree's issuance (a federation's admin: the funding check
# of every union under the federation reads only; the run issues through create_issuance).
RULES.update({
    "console_program_new": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
    "console_program_create": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
    "console_program_edit": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
    "console_program_update": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
    "console_issue_subtree_preview": Rule(FEDERATION_ADMINS, "org", idempotent_key=False),
    "console_issue_subtree_confirm": Rule(FEDERATION_ADMINS, "org"),
    "console_issue_run": Rule(FEDERATION_ADMINS, "org"),
    "console_issue_run_progress": Rule(FEDERATION_ADMINS, "org"),
    "console_issue_run_resume": Rule(FEDERATION_ADMINS, "org"),
})

# --- issue 11, reports ---
# The reports page and its downloads (console/pages/reportspage.py): who may read the API's
# program_report, over their own subtree (scope.scoped_root); aggregates only.
RULES.update({
    "console_reports": Rule(ORG_READERS | {R.ANALYST}, "org"),
    "console_reports_xlsx": Rule(ORG_READERS | {R.ANALYST}, "org"),
    "console_reports_pdf": Rule(ORG_READERS | {R.ANALYST}, "org"),
})

# --- issue 11, merchset: merchants (onboarding, approvals) and settlement in the console -----
# (console/pages/merchantspage.py, settlepage.py). Merchants as the API's merchant routes:
# federation admins register and decide, auditors read; the registrant never approves their
# own (merchants.service.may_activate). Settlement as list_settlement_runs/run_settlement;
# the bank's payout file opens the sealed account numbers: the province admin only, audited.
RULES.update({
    "console_merchants": Rule(FEDERATION_ADMINS | {R.AUDITOR}, "merchant"),
    "console_merchant": Rule(FEDERATION_ADMINS | {R.AUDITOR}, "merchant"),
    "console_merchant_new": Rule(FEDERATION_ADMINS, "merchant"),
    "console_merchant_register": Rule(FEDERATION_ADMINS, "merchant"),
    "console_merchant_queue": Rule(FEDERATION_ADMINS, "merchant"),
    "console_merchant_status": Rule(FEDERATION_ADMINS, "merchant"),
    "console_merchant_bank": Rule(FEDERATION_ADMINS, "merchant"),
    "console_settlement": Rule(frozenset({R.PROVINCE_ADMIN, R.AUDITOR}), "global"),
    "console_settlement_run": Rule(frozenset({R.PROVINCE_ADMIN}), "global"),
    "console_settlement_run_page": Rule(frozenset({R.PROVINCE_ADMIN, R.AUDITOR}), "merchant"),
    "console_settlement_batch": Rule(frozenset({R.PROVINCE_ADMIN, R.AUDITOR}), "merchant"),
    "console_settlement_export": Rule(frozenset({R.PROVINCE_ADMIN}), "merchant"),
})

# --- issue 11, funds ---
# Funds in the console (console/pages/fundspage.py): balances as the API's get_fund_balance
# (ORG_READERS, the user's subtree); a deposit as create_deposit (ORG_ADMINS); a transfer or a
# distribution down from a federation's own fund (FEDERATION_ADMINS: a union has nothing under
# it); the approval queue as list_deposit_requests, decisions as approve/reject_deposit_request
# (funds.approvals.may_check decides which admin). A decision is idempotent on the request
# itself (a second approval answers the first), so its form carries no attempt key.
RULES.update({
    "console_funds": Rule(ORG_READERS, "org"),
    "console_fund_org": Rule(ORG_READERS, "org"),
    "console_fund_deposit": Rule(ORG_ADMINS, "org"),
    "console_fund_transfer": Rule(FEDERATION_ADMINS, "org"),
    "console_fund_distribute": Rule(FEDERATION_ADMINS, "org"),
    "console_fund_requests": Rule(ORG_READERS, "org"),
    "console_fund_request_approve": Rule(FEDERATION_ADMINS, "org", idempotent_key=False),
    "console_fund_request_reject": Rule(FEDERATION_ADMINS, "org", idempotent_key=False),
})
