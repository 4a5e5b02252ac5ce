"""Simple baselines that every task's results are reported beside."""

import keras
import numpy as np
import tensorflow as tf

from kerlm.data.classification import texts_and_labels
from kerlm.metrics import classification_report


def bag_of_words_classifier(texts, label_ids, num_classes, seed=0):
    """Logistic regression on TF-IDF unigrams and bigrams, trained to convergence.

    A Keras model on raw strings: `TextVectorization(tf_idf)` then one softmax layer with
    L2 regularization, fitted full-batch with Adam (the data sets it is meant for are small).
    """
    keras.utils.set_random_seed(seed)
    vectorizer = keras.layers.TextVectorization(max_tokens=20000, ngrams=2, output_mode="tf_idf")
    vectorizer.adapt(tf.constant(texts))

    def featurize(batch):  # TF-IDF rows are >99 % zeros: sparse keeps training fast
        return tf.sparse.from_dense(vectorizer(tf.constant(batch)))

    features = featurize(texts)
    model = keras.Sequential([
        keras.Input((features.shape[-1],), sparse=True),
        keras.layers.Dense(num_classes, kernel_regularizer=keras.regularizers.L2(1e-4)),
    ])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    full_batch = tf.data.Dataset.from_tensors((features, np.asarray(label_ids))).repeat(300)
    model.fit(full_batch, epochs=1, shuffle=False, verbose=0)  # 300 full-batch steps
    return lambda new_texts: model.predict_on_batch(featurize(new_texts))


def bag_of_words_report(task, train_records, eval_records):
    """The classification report of the bag-of-words baseline for a classification task."""
    fields = task.fields()
    train_texts, _ = texts_and_labels(train_records, *fields)
    eval_texts, _ = texts_and_labels(eval_records, *fields)
    predict = bag_of_words_classifier(train_texts, task.labels.encode(train_records, fields[1]),
                                      len(task.labels), seed=task.config.train.seed)
    eval_ids = task.labels.encode(eval_records, fields[1])
    return classification_report(eval_ids, predict(eval_texts).argmax(-1), task.labels.labels)
