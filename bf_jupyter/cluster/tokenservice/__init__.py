"""The token service: hands the Bitfusion token files only to pods the admission webhooks admitted."""
