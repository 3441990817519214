# Databricks notebook source
print("about to fail")

# COMMAND ----------

raise ZeroDivisionError("deliberate failure for the contract tests")
