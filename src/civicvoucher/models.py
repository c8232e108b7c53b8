"""Import every table so Base.metadata is complete (Alembic and tests use this)."""

from civicvoucher.db import Base
from civicvoucher.funds.models import DepositRequest
from civicvoucher.ledger.models import Account, Transfer
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Product, Program
from civicvoucher.settlement.models import SettlementBatch, SettlementRun
from civicvoucher.vouchers.models import (
    Entitlement,
    ExpiryRun,
    Extension,
    Issuance,
    Redemption,
    Refund,
    Voucher,
)

__all__ = [
    "Account", "Base", "DepositRequest", "Entitlement", "ExpiryRun", "Extension", "Issuance",
    "Member", "Merchant", "Org", "Product", "Program", "Redemption", "Refund", "SettlementBatch",
    "SettlementRun", "Transfer", "Voucher",
]

# The HTTP API's tables (auth, idempotency, audit): migration 0002.
from civicvoucher.audit.models import AuditEntry, AuditHead
from civicvoucher.auth.models import (
    ApiToken,
    ApiUser,
    IdempotencyRecord,
    PaymentChannel,
    RateBucket,
)

# Facts that belong to the database (the ID-hash key's fingerprint): migration 0005.
from civicvoucher.keys import DeploymentSetting

__all__ += [
    "ApiToken", "ApiUser", "AuditEntry", "AuditHead", "DeploymentSetting", "IdempotencyRecord",
    "PaymentChannel", "RateBucket",
]

# The dashboard's rollup (summaries and the log of changed unions): migration 0012.
from civicvoucher import rollup_schema as _dashboard_rollup  # noqa: E402,F401
