"""vitspec: the Qwen2.5-VL vision front-end as data, protocol and command line."""
