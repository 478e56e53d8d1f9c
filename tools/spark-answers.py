#!/usr/bin/env python3
"""Spark's answers to the join queries of tools/tests/spark_answers.rs.

Runs each query with Apache Spark (pyspark, local mode) over the test
fixtures and writes its rows to tests/fixtures/spark-answers/NAME.csv: a
header, then the rows sorted, timestamps as yyyy-MM-dd HH:mm:ss, nulls as
empty fields. Queries without watermarks run in batch: Spark's batch answer
is the final answer of the same query on a stream once every row arrived.
The outer stream-stream join runs as a Structured Streaming query
(`Trigger.AvailableNow`, one file per batch, watermarks on both streams):
its unmatched rows are emitted only once the watermark passes their range,
so rows near the end of the input never are, in Spark as in runnel.

    pip install pyspark==3.5.3   # needs Java 17
    python3 tools/spark-answers.py

The fixtures it writes are committed; the tests do not need Spark.
"""
import csv
import datetime
import os
import shutil
import sys
import tempfile

from pyspark.sql import SparkSession

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(FIXTURES, "spark-answers")

RETAIL = ("InvoiceNo string, StockCode string, Description string, Quantity bigint, "
          "InvoiceDate timestamp, UnitPrice double, CustomerID double, Country string")
REGIONS = "Country string, Region string"

# name -> SQL over `retail`, `more` (the same files, a second stream) and
# `regions` (the static table). Keep in step with tools/tests/spark_answers.rs.
QUERIES = {
    "static-inner": """
        SELECT r.InvoiceNo, r.StockCode, r.Quantity, s.Region
        FROM retail r JOIN regions s ON r.Country = s.Country""",
    "static-left-condition": """
        SELECT r.InvoiceNo, r.StockCode, r.Quantity, s.Region
        FROM retail r LEFT OUTER JOIN regions s
        ON r.Country = s.Country AND r.Quantity >= 12""",
    "static-left-grouped": """
        SELECT s.Region, window.start AS day, sum(r.Quantity) AS qty, count(*) AS lines
        FROM retail r LEFT OUTER JOIN regions s ON r.Country = s.Country
        GROUP BY s.Region, window(r.InvoiceDate, '1 day')""",
    "stream-inner-range": """
        SELECT a.InvoiceNo, a.StockCode, b.InvoiceNo AS later_invoice
        FROM retail a JOIN more b
        ON a.CustomerID = b.CustomerID AND a.InvoiceNo < b.InvoiceNo
        AND b.InvoiceDate BETWEEN a.InvoiceDate AND a.InvoiceDate + INTERVAL 1 HOUR""",
}

# name -> SQL over the streams `retail` and `more`, each with a 1-hour
# watermark on InvoiceDate, run as a streaming query.
STREAMING = {
    "stream-left-range": """
        SELECT a.InvoiceNo, a.StockCode, b.InvoiceNo AS later_invoice
        FROM retail a LEFT OUTER JOIN more b
        ON a.CustomerID = b.CustomerID AND a.InvoiceNo < b.InvoiceNo
        AND b.InvoiceDate BETWEEN a.InvoiceDate AND a.InvoiceDate + INTERVAL 1 HOUR""",
}


def cell(v):
    if v is None:
        return ""
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def main():
    spark = (SparkSession.builder.master("local[1]").appName("runnel-spark-answers")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    retail = spark.read.csv(os.path.join(FIXTURES, "retail-by-day"), header=True, schema=RETAIL)
    retail.createOrReplaceTempView("retail")
    retail.createOrReplaceTempView("more")
    spark.read.csv(os.path.join(FIXTURES, "country-regions.csv"), header=True,
                   schema=REGIONS).createOrReplaceTempView("regions")
    os.makedirs(OUT, exist_ok=True)
    for name, sql in QUERIES.items():
        df = spark.sql(sql)
        write(name, df.columns, df.collect())
    # Spark's file stream reads files oldest first by modification time;
    # runnel's reads them in name order: a copy whose times follow the names.
    days = tempfile.mkdtemp(prefix="spark-answers-")
    for i, f in enumerate(sorted(os.listdir(os.path.join(FIXTURES, "retail-by-day")))):
        shutil.copy(os.path.join(FIXTURES, "retail-by-day", f), os.path.join(days, f))
        os.utime(os.path.join(days, f), (1_000_000_000 + i * 60, 1_000_000_000 + i * 60))
    for name, sql in STREAMING.items():
        for view in ("retail", "more"):
            (spark.readStream.schema(RETAIL).option("header", True)
             .option("maxFilesPerTrigger", 1)
             .csv(days)
             .withWatermark("InvoiceDate", "1 hour")
             .createOrReplaceTempView(view))
        df = spark.sql(sql)
        got = []
        query = (df.writeStream.outputMode("append").trigger(availableNow=True)
                 .foreachBatch(lambda batch, _id: got.extend(batch.collect())).start())
        query.awaitTermination()
        write(name, df.columns, got)
    spark.stop()
    shutil.rmtree(days)


def write(name, columns, collected):
    rows = sorted([cell(v) for v in r] for r in collected)
    path = os.path.join(OUT, name + ".csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)
    print(f"{name}: {len(rows)} rows -> {os.path.relpath(path, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
