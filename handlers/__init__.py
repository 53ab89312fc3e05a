"""lambdafit's Lambda runtime: an ONNX Runtime model behind an API Gateway-facing HTTP API.

Runs inside the function; never imports build-time code (packager, torch, onnx).
"""
