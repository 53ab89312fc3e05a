"""The same endpoint as FastAPI users write it, run on Lambda through Mangum."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel

session = onnxruntime.InferenceSession(os.environ["MODEL"], providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
dtype = np.int64 if session.get_inputs()[0].type == "tensor(int64)" else np.float32
app = FastAPI()


class Request(BaseModel):
    inputs: list[list[float]]


@app.post("/predict")
def predict(request: Request) -> dict[str, list[list[float]]]:
    outputs = session.run(None, {input_name: np.asarray(request.inputs, dtype=dtype)})[0]
    return {"outputs": outputs.tolist()}


handler = Mangum(app, lifespan="off")
