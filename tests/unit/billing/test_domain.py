import pytest

from sandwich.services.billing.domain import (
    InsufficientFunds,
    OperationKind,
    balance_after,
    ledger_balance,
    signed_amount,
)

pytestmark = pytest.mark.unit


def test_payments_subtract_deposits_and_refunds_add() -> None:
    assert signed_amount(OperationKind.PAYMENT, 5) == -5
    assert signed_amount(OperationKind.DEPOSIT, 5) == 5
    assert signed_amount(OperationKind.REFUND, 5) == 5


def test_amounts_are_always_positive() -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError):
            signed_amount(OperationKind.DEPOSIT, bad)


def test_a_payment_never_overdraws() -> None:
    assert balance_after(100, OperationKind.PAYMENT, 100) == 0
    with pytest.raises(InsufficientFunds):
        balance_after(99, OperationKind.PAYMENT, 100)


def test_ledger_balance_is_deposits_and_refunds_minus_payments() -> None:
    ledger = [(OperationKind.DEPOSIT, 1000), (OperationKind.PAYMENT, 300), (OperationKind.REFUND, 300)]
    assert ledger_balance(ledger) == 1000
