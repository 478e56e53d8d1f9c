//! Spark-flavoured streaming SQL, parsed into the builder's plan.
