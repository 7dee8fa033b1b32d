"""Durable retry policy for activities that fail for infrastructure reasons (storage, host).

Provider errors are not retried this way: they come back as outcomes and the batch
orchestrator waits them out on durable timers.
"""

import azure.durable_functions as df

INFRASTRUCTURE_RETRY = df.RetryOptions(
    first_retry_interval_in_milliseconds=2_000, max_number_of_attempts=4
)
