"""Tests of the policy documents and the policy evaluator."""
