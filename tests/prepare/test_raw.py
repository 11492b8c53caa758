"""Reading raw interactions and metadata: the Amazon layouts, tables, and errors with their line."""
import gzip
import json

import numpy as np
import pytest

from src.common.errors import DataError
from src.prepare.raw import compose_text, read_interactions, read_metadata


def test_amazon_review_json_lines(tmp_path):
    reviews = [{"reviewerID": "A1", "asin": "B01", "overall": 5.0, "unixReviewTime": 1400000000,
                "reviewText": "great"},
               {"reviewerID": "A2", "asin": "B02", "overall": 3.0, "unixReviewTime": 1300000000}]
    path = tmp_path / "Baby_5.json.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in reviews) + "\n\n")
    df = read_interactions(path)
    assert df["user"].tolist() == ["A1", "A2"] and df["item"].tolist() == ["B01", "B02"]
    assert df["rating"].tolist() == [5.0, 3.0] and df["timestamp"].tolist() == [1.4e9, 1.3e9]
    assert df.attrs["columns"] == {"user": "reviewerID", "item": "asin", "rating": "overall",
                                   "timestamp": "unixReviewTime"}


def test_headerless_csv_with_named_columns_and_date_strings(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("u1,i1,4,2020-01-02\nu1,i2,5,2020-01-01\n")
    df = read_interactions(path, columns=["user", "item", "rating", "timestamp"])
    assert df["timestamp"].tolist() == [1577923200.0, 1577836800.0]
    assert df["line"].tolist() == [1, 2]


def test_table_without_time_or_rating_gets_nan(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("user_id\titem_id\n1\ta\n2\tb\n")
    df = read_interactions(path)
    assert df["rating"].isna().all() and df["timestamp"].isna().all()


def test_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"user": "a", "item": "x"}\n{"user": "b", "item": \n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: not a JSON object"):
        read_interactions(path)
    path.write_text('{"user": "a", "item": "x"}\n{"user": "", "item": "y"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: empty user id"):
        read_interactions(path)
    table = tmp_path / "r.csv"
    table.write_text("user,item,rating\na,x,5\nb,y,high\n")
    with pytest.raises(DataError, match=r"r.csv, line 3: 'rating' must be a number, got 'high'"):
        read_interactions(table)
    table.write_text("who,what\na,x\n")
    with pytest.raises(DataError, match=r"no user column .*columns: \[user, item, rating, timestamp\]"):
        read_interactions(table)
    with pytest.raises(DataError, match="unknown file type '.parquet'"):
        read_interactions(tmp_path / "x.parquet")


def test_amazon_2014_metadata_python_literals_and_2018_json(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text(
        "{'asin': 'B01', 'title': 'Soft &amp; Warm Blanket', 'brand': 'Acme', "
        "'categories': [['Baby', 'Nursery'], ['Baby', 'Bedding']], 'imUrl': 'http://x/img/B01.jpg'}\n"
        '{"asin": "B02", "title": "Rattle", "category": ["Baby", "Toys"], '
        '"description": ["<b>Loud</b> and fun", "Loud and fun"], "imageURL": ["http://x/a.jpg", "http://x/b.jpg"]}\n'
        '{"asin": "B03"}\n'
        '{"asin": "B01", "title": "a later duplicate"}\n')
    meta = read_metadata(path, text_fields=["title", "brand", "categories", "category", "description"])
    assert meta.loc["B01", "text"] == "Soft & Warm Blanket. Acme. Baby, Nursery. Baby, Bedding"
    assert meta.loc["B02", "text"] == "Rattle. Baby. Toys. Loud and fun"
    assert meta.loc["B03", "text"] == "" and meta.loc["B03", "image"] == ""
    assert meta.loc["B01", "image"] == "http://x/img/B01.jpg" and meta.loc["B02", "image"] == "http://x/a.jpg"
    assert len(meta) == 3


def test_compose_text_skips_missing_and_nan_fields():
    assert compose_text({"title": "A", "brand": np.nan, "text": "  more  text "}, ["title", "brand", "text"]) \
        == "A. more text"
