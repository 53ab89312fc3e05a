"""`pack --task text-generation`: a Hugging Face decoder checkpoint built into ONNX Runtime GenAI model
folders (fp32, int8, int4 with onnxruntime-genai's model builder), measured with generation metrics
(perplexity and greedy agreement against fp32, time to first token, tokens per second, peak memory),
chosen by the fitter's rules, and bundled behind an OpenAI-compatible, streaming endpoint.

    checkpoint  what the folder holds, and whether the builder takes its architecture
    recipes     the candidates and the builder subprocess that makes each
    probe       run in a fresh process: one candidate's numbers
    measure     GenerationMeasurement, from the probe's output against fp32's
    pipeline    prepare -> evaluate -> assemble, as packager.pack does for tensor models
    report      the candidates' table with generation columns
    samples     sample events for `sam local invoke -e`
"""
