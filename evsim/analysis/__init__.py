"""What is made of runs: metrics (latency, decision time, agreement), energy, comparisons, reports and plots."""
