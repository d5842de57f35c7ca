"""Running one case: loaded runners reused per process (`pool`), timing and memory (`measure`),
what a case did turned into its `ResultRow` (`case_record`), and failures classified (`failures`).
"""
