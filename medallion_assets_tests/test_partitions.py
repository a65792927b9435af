from datetime import date

import pytest

from medallion_assets.framework.partitions import InvalidPartitionKey, PartitionWindow, parse_partition_key


@pytest.mark.parametrize(
    "key",
    ["2013-02-30", "2013-13-01", "yesterday", "2013-01-01' OR '1'='1", "2013-1-1", "", "2013-01-01T00:00"],
)
def test_a_partition_key_that_is_not_a_date_is_rejected_before_any_sql(key: str) -> None:
    with pytest.raises(InvalidPartitionKey, match="partition key"):
        parse_partition_key(key)


def test_window_predicate_is_built_from_validated_dates() -> None:
    window = PartitionWindow.for_keys("2013-01-30", "2013-02-01")
    assert window.day_count == 3
    assert list(window.days())[-1] == date(2013, 2, 1)
    assert window.predicate("partition_date") == (
        "`partition_date` >= DATE'2013-01-30' AND `partition_date` < DATE'2013-02-02'"
    )
    assert str(window) == "2013-01-30..2013-02-01"


def test_a_window_cannot_be_empty_or_built_from_strings() -> None:
    with pytest.raises(InvalidPartitionKey):
        PartitionWindow(date(2013, 1, 2), date(2013, 1, 2))
    with pytest.raises(InvalidPartitionKey):
        PartitionWindow("2013-01-01", "2013-01-02")  # type: ignore[arg-type]
