"""Amazon SQS and SNS adapter."""
