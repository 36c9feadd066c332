"""The business vocabulary of the contracts, each rule in one home.

What several services must agree on and what the protos alone cannot say: the job-id,
node-id and config-key rules, which job states count as active or terminal, the
effective-GPU rule, page sizes and text limits, job parameter schemas, reading every
page of a list, and compare-and-swap writes. The modules at this level are pure Python
(domain code may use them); ``ringrift_contracts.tables`` maps the protos' enums to
names and is for api/ and adapters/ only.
"""
