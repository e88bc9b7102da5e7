"""The REFORMS checklist (Kapoor et al. 2024): its 8 modules and 32 items, paraphrased, and hints
for the items only the study's author can answer. `locallm.report.reforms` fills them from a run.
"""

# The REFORMS checklist (Kapoor et al. 2024, Sci. Adv. 10:eadk3452; reforms.cs.princeton.edu):
# 32 items in 8 modules, paraphrased. Each item's filler (locallm.report.reforms) answers it from
# the run.
MODULES = {
    "1": "Study goals",
    "2": "Computational reproducibility",
    "3": "Data quality",
    "4": "Data preprocessing",
    "5": "Modeling",
    "6": "Data leakage",
    "7": "Metrics and uncertainty",
    "8": "Generalizability and limitations",
}


ITEMS = {
    "1a": "The population or distribution about which the scientific claim is made.",
    "1b": "Why this population or distribution (1a) was chosen.",
    "1c": "Why ML methods are used in the study.",
    "2a": "The dataset used for training and evaluation, with a link or DOI that identifies it.",
    "2b": "The code that trains and evaluates the models and produces the results, with a link or "
    "DOI that identifies its version.",
    "2c": "The computing infrastructure used.",
    "2d": "A README with instructions for generating the results from the data and code.",
    "2e": "A reproduction script that produces all results reported in the paper.",
    "3a": "The sources of the data (training and evaluation), when they were collected, the source "
    "and process of the ground-truth annotations, and other documentation.",
    "3b": "The distribution or set the dataset is sampled from (the sampling frame).",
    "3c": "Why the dataset is useful for the modeling task.",
    "3d": "The outcome variable, its definition and descriptive statistics (by class).",
    "3e": "The sample size: samples per partition and per class.",
    "4a": "Which samples are excluded, and why.",
    "4b": "How impossible or corrupt samples are dealt with.",
    "4c": "Every transformation from the raw data to the form the model uses (a flow of counts).",
    "5a": "Every model trained, in detail.",
    "5b": "Why these model types were chosen.",
    "5c": "How the models are evaluated: train/test splits or cross-validation folds.",
    "5d": "How the models reported in the paper were selected.",
    "5e": "The hyperparameters of the reported models and how they were tuned.",
    "5f": "That model comparisons are against appropriate baselines.",
    "6a": "That preprocessing and modeling use only the training data, not the test data.",
    "6b": "How dependencies and duplicates between training and test data are handled.",
    "6c": "That each input to the model is legitimate for the task and does not leak the outcome.",
    "7a": "Every metric used to assess and compare models, and why the one used to select the "
    "final model suits the task.",
    "7b": "Uncertainty estimates (e.g. confidence intervals) and how they are computed.",
    "7c": "The statistical tests used, why, and checks of their assumptions.",
    "7d": "Variability of the results across random seeds or training runs.",
    "8a": "Evidence of external validity.",
    "8b": "Contexts in which the findings are not expected to hold.",
    "8c": "Other limitations of the study.",
}


AUTHOR_HINTS = {
    "1a": "The run's corpus is described in 3a; the claim's population is yours to state.",
    "6c": "The model sees only the prompt (task.prompt with the passage); say why nothing in "
    "the passage gives the label away (e.g. names, dates).",
    "7c": "The workflow reports bootstrap CIs, including of the difference to the majority "
    "baseline, and runs no significance tests.",
    "8b": "Results hold for passages like the test split's; other periods, genres or "
    "languages are untested.",
}
