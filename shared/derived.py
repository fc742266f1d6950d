"""Names of the fields the producer adds to a record's payload (``RawRecord.derived``): facts it
settles from file order or run options, which travel with the record but are not its content (no
digest, no idempotency key). They start with ``_`` so no source field can clash with them."""

ASSIGNED_ID = "_assigned_id"
"""iteras: the id the producer gave a customer the source gave none (next above the highest)."""
MANUAL_VERIFICATION = "_manual_invoice_verification"
"""iteras: the run asked for imported subscriptions to be marked for manual invoice verification."""
CREATE_MISSING = "_create_missing"
"""csv: the run was started with --create-missing: an autopay or paperless row whose account does not
exist creates the customer account and its owner login first."""
