;;; delegate.el --- pitcrew in a real Emacs with eglot, headless  -*- lexical-binding: t; -*-

;; Two scenarios, chosen by the spec's `scenario': the delegation below (the default), and
;; `questions' (`pitcrew-test--questions'): the team asks several times while the user works.

;; Run by tests/tests/editor_emacs.rs as `emacs --batch -l delegate.el' (without -Q: Debian's
;; site-start puts eglot on the load path).  What a user does, through eglot's own commands:
;;
;; 1. visit a C file of a git repository; `M-x eglot' starts `pitcrew lsp' from
;;    `eglot-server-programs';
;; 2. type a `// pitcrew: <instruction>' comment above a function, without saving;
;; 3. `M-x eglot-code-actions' over the function and pick "Delegate: <instruction>";
;; 4. wait for the plan to be ready (`pitcrew/planChanged', confirmed by `pitcrew/plan');
;; 5. see the reviewer's finding through Flymake on the line it is about, and its quick fixes
;;    among the code actions there;
;; 6. type below the function, then pick "Apply result of ..." and accept eglot's prompt:
;;    the result lands in the buffer (workspace/applyEdit) and the typing is kept;
;; 7. pick "Apply reviewer's fix" on the finding: its line is rewritten, the finding goes.
;;
;; The scenario comes as JSON in the file named by $PITCREW_TEST_SPEC:
;;   server      the `pitcrew' binary;  helper  editors/emacs/pitcrew.el
;;   file        the file to visit (absolute)
;;   instruction what to write after `// pitcrew:'
;;   finding     the reviewer's message;  findingLine  its line (1-based) before applying
;;   appended    what the user types at the end of the buffer before applying
;;   applied     the buffer's text expected after applying;  appliedLine  the finding's line then
;;   fixed       the buffer's text expected after the reviewer's fix
;;   out         where to write the final buffer text
;;   timeout     seconds to wait for each step
;;   scenario    "questions" for the questions scenario; questions  how many to ask
;; Exits 0 when everything held, else 1 after printing what failed (and eglot's event log).

(require 'cl-lib)
(require 'subr-x)

(defvar pitcrew-test--spec
  (let ((file (getenv "PITCREW_TEST_SPEC")))
    (unless file
      (message "FAIL: PITCREW_TEST_SPEC is not set")
      (kill-emacs 2))
    (with-temp-buffer
      (insert-file-contents file)
      (json-parse-buffer :object-type 'plist)))
  "The scenario, from the Rust test.")

(unless (require 'eglot nil t)
  (message "FAIL: eglot is not installed: run tests/editors/setup (apt: elpa-eglot)")
  (kill-emacs 1))
(require 'flymake)
;; The optional helper users load (editors/emacs/pitcrew.el): plan notifications, commands, the
;; plan buffer, and the Emacs 28 jsonrpc fix without which `workspace/applyEdit' can stall.
(load (plist-get pitcrew-test--spec :helper) nil t)

(defun pitcrew-test--get (key)
  "The spec's KEY, which must be there."
  (or (plist-get pitcrew-test--spec key)
      (error "The spec has no %s" key)))

(defvar pitcrew-test--server nil "The eglot server of the visited file.")
(defvar pitcrew-test--plans (make-hash-table :test 'equal)
  "planId -> the statuses `pitcrew/planChanged' reported, most recent first.")
(defvar pitcrew-test--prompts nil "What eglot asked the user, most recent first.")
(defvar pitcrew-test--step "starting" "What the test is doing, for failure reports.")

(defvar pitcrew-test--started (float-time) "When the test started.")

(defun pitcrew-test--log (format-string &rest args)
  (message "emacs %5.2fs: %s" (- (float-time) pitcrew-test--started)
           (apply #'format format-string args)))

(defun pitcrew-test--buffer-tail (buffer chars)
  "The last CHARS characters of BUFFER, or a note that there is none."
  (if (buffer-live-p buffer)
      (with-current-buffer buffer
        (buffer-substring-no-properties (max (point-min) (- (point-max) chars)) (point-max)))
    "(none)"))

(defun pitcrew-test--fail (format-string &rest args)
  "Print what failed, with eglot's view of the conversation, and exit 1."
  (message "FAIL (%s): %s" pitcrew-test--step (apply #'format format-string args))
  (when pitcrew-test--server
    (message "--- eglot events (tail)\n%s"
             (pitcrew-test--buffer-tail (jsonrpc-events-buffer pitcrew-test--server) 12000))
    (message "--- server stderr (tail)\n%s"
             (pitcrew-test--buffer-tail (jsonrpc-stderr-buffer pitcrew-test--server) 4000)))
  (kill-emacs 1))

(defmacro pitcrew-test--step (name &rest body)
  "Run BODY as the step NAME, for the log and failure reports."
  (declare (indent 1))
  `(progn (setq pitcrew-test--step ,name)
          (pitcrew-test--log "%s" ,name)
          ,@body))

(defun pitcrew-test--run-idle-timers (idle-for already-run)
  "Run the idle timers due after IDLE-FOR idle seconds and not in ALREADY-RUN.
A user waiting is idle, and Emacs runs its idle timers then (eglot sends
`didChange' from one); batch Emacs is never idle, so this does what the
command loop would.  Returns ALREADY-RUN with the timers run added."
  (dolist (timer (copy-sequence timer-idle-list))
    (when (and (memq timer timer-idle-list)
               (not (memq timer already-run))
               (<= (float-time (timer--time timer)) idle-for))
      (push timer already-run)
      (timer-event-handler timer)))
  already-run)

(defun pitcrew-test--wait (what predicate)
  "Process events, idle, until PREDICATE returns non-nil, which is returned.
Fails after the timeout.  WHAT says what is awaited: a string, or a
function that says it (called on failure)."
  (let* ((started (float-time))
         (deadline (+ started (pitcrew-test--get :timeout)))
         (idle-timers-run nil)
         value)
    (while (not (setq value (funcall predicate)))
      (when (> (float-time) deadline)
        (pitcrew-test--fail "timed out waiting for %s"
                            (if (functionp what) (funcall what) what)))
      (accept-process-output nil 0.05)
      (setq idle-timers-run
            (pitcrew-test--run-idle-timers (- (float-time) started) idle-timers-run)))
    value))

;; Every status `pitcrew/planChanged' reports, through the helper's hook, and what the mode
;; line showed of the team's work then.
(defvar pitcrew-test--mode-lines nil "The mode line's pitcrew text after each change.")
(add-hook 'pitcrew-plan-changed-functions
          (lambda (_server plan-id status _plan)
            (push status (gethash plan-id pitcrew-test--plans))
            ;; (batch Emacs renders no mode line: `format-mode-line' is empty there)
            (push pitcrew--mode-line pitcrew-test--mode-lines)))

(defun pitcrew-test--actions (beg end)
  "The code actions eglot gets for BEG..END (with the Flymake diagnostics there)."
  (eglot-code-actions beg end))

(defun pitcrew-test--titles (actions)
  (mapcar (lambda (a) (plist-get a :title)) actions))

(defun pitcrew-test--pick (beg end title)
  "Run the code action TITLE at BEG..END as `M-x eglot-code-actions' does."
  (let ((actions (pitcrew-test--actions beg end)))
    (unless (member title (pitcrew-test--titles actions))
      (pitcrew-test--fail "no code action %S; eglot got %S" title
                          (pitcrew-test--titles actions)))
    ;; The menu is a `completing-read' (the event is not a mouse click, so no popup menu).
    (cl-letf (((symbol-function 'completing-read)
               (lambda (_prompt _collection &rest _) title)))
      (let ((last-nonmenu-event ?\r))
        (eglot-code-actions beg end nil t)))))

(defun pitcrew-test--plan (plan-id)
  "`pitcrew/plan' for PLAN-ID, as a plist."
  (jsonrpc-request pitcrew-test--server :pitcrew/plan `(:planId ,plan-id)))

(defun pitcrew-test--wait-status (plan-id status)
  (pitcrew-test--wait (lambda ()
                        (format "plan %s to be %s (it reported %S; pitcrew/plan says %S)"
                                plan-id status (reverse (gethash plan-id pitcrew-test--plans))
                                (ignore-errors (pitcrew-test--plan plan-id))))
                      (lambda () (member status (gethash plan-id pitcrew-test--plans)))))

(defun pitcrew-test--findings ()
  "The current buffer's Flymake diagnostics from pitcrew."
  (cl-remove-if-not
   (lambda (d)
     (equal (plist-get (alist-get 'eglot-lsp-diag (flymake-diagnostic-data d)) :source)
            "pitcrew"))
   (flymake-diagnostics)))

(defun pitcrew-test--finding-on (line)
  "The Flymake diagnostic with the reviewer's message on LINE (1-based), if any."
  (cl-find-if (lambda (d)
                (and (string-match-p (regexp-quote (pitcrew-test--get :finding))
                                     (flymake-diagnostic-text d))
                     (= line (line-number-at-pos (flymake-diagnostic-beg d)))))
              (pitcrew-test--findings)))

(defun pitcrew-test--describe (diagnostics)
  (mapcar (lambda (d) (format "line %d %s %S" (line-number-at-pos (flymake-diagnostic-beg d))
                              (flymake-diagnostic-type d) (flymake-diagnostic-text d)))
          diagnostics))

(defun pitcrew-test--wait-finding (line)
  (pitcrew-test--wait
   (lambda ()
     (format "the finding %S on line %d through Flymake (it has %S)"
             (pitcrew-test--get :finding) line
             (pitcrew-test--describe (flymake-diagnostics))))
   (lambda () (pitcrew-test--finding-on line))))

(defun pitcrew-test--text ()
  (buffer-substring-no-properties (point-min) (point-max)))

(defun pitcrew-test--expect-text (what expected)
  (unless (equal (pitcrew-test--text) expected)
    (pitcrew-test--fail "%s: the buffer is\n%s\nexpected\n%s" what (pitcrew-test--text) expected)))

;; The first step of every scenario.
(defun pitcrew-test--start ()
  "Visit the spec's file, `M-x eglot', wait for the team; return the file's text."
  (let ((file (pitcrew-test--get :file))
        original)
    (pitcrew-test--step "visit the file and M-x eglot"
      (setq eglot-server-programs
            `((c-mode . (,(pitcrew-test--get :server) "lsp"))))
      (find-file file)
      (setq original (pitcrew-test--text))
      (unless (eq major-mode 'c-mode)
        (pitcrew-test--fail "%s opened in %s, not c-mode" file major-mode))
      (call-interactively #'eglot)
      (setq pitcrew-test--server
            (pitcrew-test--wait "eglot to manage the buffer"
                                (lambda () (and (eglot-managed-p) (eglot-current-server)))))
      (let ((root (file-name-as-directory (file-truename (project-root (eglot--project pitcrew-test--server))))))
        (unless (string-prefix-p root (file-truename file))
          (pitcrew-test--fail "eglot's project root is %s" root)))
      ;; The team comes up in the background; `pitcrew/plans' answers once it is there.
      (pitcrew-test--wait "the team to start"
                          (lambda ()
                            (condition-case err
                                (progn (jsonrpc-request pitcrew-test--server :pitcrew/plans nil) t)
                              (jsonrpc-error
                               (unless (string-match-p "starting" (format "%S" err))
                                 (pitcrew-test--fail "pitcrew/plans: %S" err))
                               nil)))))
    original))

(defun pitcrew-test--run ()
  (let ((file (pitcrew-test--get :file))
        (instruction (pitcrew-test--get :instruction))
        (original nil)
        plan-id)
    (setq original (pitcrew-test--start))
    (pitcrew-test--step "type a pitcrew: comment, unsaved, and delegate it"
      (goto-char (point-min))
      (insert (format "// pitcrew: %s\n" instruction))
      (let* ((beg (point-min))
             (end (save-excursion (goto-char (point-min)) (forward-line 5) (point)))
             (title (format "Delegate: %s" instruction))
             (offered (cl-find title (pitcrew-test--actions beg end)
                               :key (lambda (a) (plist-get a :title)) :test #'equal)))
        (unless offered
          (pitcrew-test--fail "no %S action" title))
        (unless (eq (plist-get offered :isPreferred) t)
          (pitcrew-test--fail "%S is not the preferred action: %S" title offered))
        ;; `codeAction/resolve' fills in the command from the action's data, whether or not
        ;; the server left it out (this eglot does not ask for lazy resolution).
        (let* ((resolved (jsonrpc-request pitcrew-test--server :codeAction/resolve offered))
               (command (plist-get resolved :command))
               (arguments (aref (plist-get command :arguments) 0)))
          (unless (and (equal (plist-get command :command) "pitcrew.delegate")
                       (equal (plist-get arguments :instruction) instruction))
            (pitcrew-test--fail "codeAction/resolve gave %S" resolved)))
        (pitcrew-test--pick beg end title))
      (when (eq (buffer-modified-p) nil)
        (pitcrew-test--fail "the buffer was saved"))
      (setq plan-id
            (pitcrew-test--wait "a pitcrew/planChanged for the delegated plan"
                                (lambda () (car (hash-table-keys pitcrew-test--plans))))))

    (pitcrew-test--step (format "wait for plan %s to be ready" plan-id)
      (pitcrew-test--wait-status plan-id "ready")
      ;; The mode line showed the team at work, and shows nothing once it is done.
      (unless (cl-some (lambda (text) (string-match-p "pitcrew: 1 at work" text))
                       pitcrew-test--mode-lines)
        (pitcrew-test--fail "the mode line never showed the work: %S (statuses %S, global-mode-string %S)" pitcrew-test--mode-lines (gethash plan-id pitcrew-test--plans) global-mode-string))
      (unless (memq 'pitcrew--mode-line global-mode-string)
        (pitcrew-test--fail "pitcrew is not in the mode line: %S" global-mode-string))
      (unless (equal pitcrew--mode-line "")
        (pitcrew-test--fail "the mode line still shows work: %S" pitcrew--mode-line))
      (let* ((plan (pitcrew-test--plan plan-id))
             (task (aref (plist-get plan :tasks) 0)))
        (unless (and (equal (plist-get plan :status) "ready")
                     (equal (plist-get task :status) "ready")
                     (equal (plist-get task :findings) 1))
          (pitcrew-test--fail "pitcrew/plan says %S" plan)))
      ;; M-x pitcrew-show-plan: the plan buffer lists the task and its state.
      (let ((source (current-buffer)))
        (let ((shown (with-current-buffer (pitcrew-show-plan plan-id)
                       (buffer-substring-no-properties (point-min) (point-max)))))
          (unless (and (string-match-p (regexp-quote (format "Plan %s: %s" plan-id instruction))
                                       shown)
                       (string-match-p "Status: ready" shown)
                       (string-match-p "/delegated +ready +implement add +\\[1 findings\\]"
                                       shown))
            (pitcrew-test--fail "the plan buffer shows\n%s" shown)))
        (pop-to-buffer-same-window source)))

    (pitcrew-test--step "the reviewer's finding through Flymake, and its quick fixes"
      (let* ((line (pitcrew-test--get :findingLine))
             (finding (pitcrew-test--wait-finding line)))
        (unless (eq (flymake-diagnostic-type finding) 'eglot-warning)
          (pitcrew-test--fail "the finding is a %s, not a warning"
                              (flymake-diagnostic-type finding)))
        (let ((titles (pitcrew-test--titles
                       (pitcrew-test--actions (flymake-diagnostic-beg finding)
                                              (flymake-diagnostic-end finding)))))
          (dolist (title '("Apply reviewer's fix" "Send back to an implementer" "Dismiss finding"))
            (unless (member title titles)
              (pitcrew-test--fail "no %S among the actions on the finding: %S" title titles))))))

    (pitcrew-test--step "type below, then apply the result"
      (goto-char (point-max))
      (insert (pitcrew-test--get :appended))
      (cl-letf (((symbol-function 'y-or-n-p)
                 (lambda (prompt) (push prompt pitcrew-test--prompts) t)))
        (pitcrew-test--pick (point-min) (point-min) (format "Apply result of %s" instruction))
        (pitcrew-test--wait-status plan-id "applied")
        (pitcrew-test--wait "the result in the buffer"
                            (lambda () (equal (pitcrew-test--text) (pitcrew-test--get :applied)))))
      ;; The plan buffer follows the plan as it changes, from the notifications alone.
      (let ((plan-buffer (get-buffer (format "*pitcrew plan %s*" plan-id))))
        (pitcrew-test--wait "the plan buffer to say applied"
                            (lambda ()
                              (with-current-buffer plan-buffer
                                (save-excursion
                                  (goto-char (point-min))
                                  (re-search-forward "Status: applied" nil t))))))
      (pitcrew-test--log "eglot asked: %S" pitcrew-test--prompts)
      (pitcrew-test--expect-text "after applying" (pitcrew-test--get :applied))
      (unless (buffer-modified-p)
        (pitcrew-test--fail "the buffer is not modified after applying"))
      (unless (equal (with-temp-buffer (insert-file-contents file) (buffer-string)) original)
        (pitcrew-test--fail "the file on disk changed: the edit belongs in the buffer")))

    (pitcrew-test--step "apply the reviewer's fix"
      (let ((finding (pitcrew-test--wait-finding (pitcrew-test--get :appliedLine))))
        (pitcrew-test--pick (flymake-diagnostic-beg finding) (flymake-diagnostic-end finding)
                            "Apply reviewer's fix"))
      (pitcrew-test--expect-text "after the reviewer's fix" (pitcrew-test--get :fixed))
      (pitcrew-test--wait (lambda ()
                            (format "the finding to go (Flymake has %S)"
                                    (pitcrew-test--describe (pitcrew-test--findings))))
                          (lambda () (null (pitcrew-test--findings)))))

    (pitcrew-test--step "write the buffer's text and shut down"
      (let ((text (pitcrew-test--text)))
        (with-temp-file (pitcrew-test--get :out) (insert text)))
      (set-buffer-modified-p nil)
      (eglot-shutdown pitcrew-test--server))))

;; The `questions' scenario: the team asks while the user works, again and again.
(defun pitcrew-test--events-text ()
  (with-current-buffer (jsonrpc-events-buffer pitcrew-test--server)
    (buffer-substring-no-properties (point-min) (point-max))))

(defun pitcrew-test--occurrences (regexp text)
  (let ((count 0) (start 0))
    (while (string-match regexp text start)
      (setq count (1+ count) start (match-end 0)))
    count))

(defun pitcrew-test--questions ()
  "Delegate :questions times; the reviewer rejects each result, so the team asks each time.
No question may open a prompt (a `completing-read' would take what the user types, and
Enter would answer it); each is told in the echo area and answered by a code action; every
`pitcrew/planChanged' is read (none dropped as invalid JSON) and the plan buffer follows."
  (pitcrew-test--start)
  (let ((count (pitcrew-test--get :questions))
        (prompts nil)
        (plan-ids nil)
        (end (save-excursion (goto-char (point-min)) (forward-line 4) (point))))
    (cl-letf (((symbol-function 'completing-read)
               (lambda (prompt &rest _) (push prompt prompts) ""))
              ((symbol-function 'read-from-minibuffer)
               (lambda (prompt &rest _) (push prompt prompts) "")))
      (dotimes (i count)
        (pitcrew-test--step (format "delegate %d of %d; the reviewer rejects it" (1+ i) count)
          (let ((known (hash-table-keys pitcrew-test--plans)))
            (pitcrew-test--pick (point-min) end "Delegate to implementer: implement")
            (push (pitcrew-test--wait "the new plan's pitcrew/planChanged"
                                      (lambda ()
                                        (cl-find-if-not (lambda (id) (member id known))
                                                        (hash-table-keys pitcrew-test--plans))))
                  plan-ids))
          ;; The user types on while the team works and asks.
          (goto-char (point-max))
          (insert (format "/* typed while the team asked, %d */\n" (1+ i)))
          (pitcrew-test--wait
           (lambda () (format "question %d told in the echo area (events:\n%s)" (1+ i)
                              (pitcrew-test--buffer-tail
                               (jsonrpc-events-buffer pitcrew-test--server) 3000)))
           (lambda () (>= (pitcrew-test--occurrences ") asks: "
                                                     (pitcrew-test--events-text))
                          (1+ i))))))
      (pitcrew-test--step "no prompt opened, nothing dropped"
        (when prompts
          (pitcrew-test--fail "prompts took the keyboard: %S" prompts))
        (let ((events (pitcrew-test--events-text)))
          (when (string-match-p "showMessageRequest" events)
            (pitcrew-test--fail "the server sent a showMessageRequest"))
          (dolist (buffer (list (get-buffer "*Messages*")))
            (when (and buffer (with-current-buffer buffer
                                (save-excursion (goto-char (point-min))
                                                (search-forward "Invalid JSON" nil t))))
              (pitcrew-test--fail "jsonrpc dropped a message:\n%s"
                                  (pitcrew-test--buffer-tail buffer 3000))))))
      (pitcrew-test--step "answer every question with its code action"
        (dolist (plan-id plan-ids)
          (let* ((prefix (format "Answer: Abort (plan %s: " plan-id))
                 (titles (pitcrew-test--titles (pitcrew-test--actions (point-min) (point-min))))
                 (title (cl-find-if (lambda (title) (string-prefix-p prefix title)) titles)))
            (unless title
              (pitcrew-test--fail "no action %S...; eglot got %S" prefix titles))
            (pitcrew-test--pick (point-min) (point-min) title)))
        (pitcrew-test--wait
         "no question left in pitcrew/plans"
         (lambda ()
           (cl-every (lambda (plan) (null (plist-get plan :question)))
                     (append (plist-get (jsonrpc-request pitcrew-test--server :pitcrew/plans nil)
                                        :plans)
                             nil)))))
      (pitcrew-test--step "every plan's last notification is its state; the plan buffer too"
        (dolist (plan-id plan-ids)
          (let ((status (plist-get (pitcrew-test--plan plan-id) :status)))
            (pitcrew-test--wait (lambda () (format "plan %s's notifications to reach %s (got %S)"
                                                   plan-id status
                                                   (gethash plan-id pitcrew-test--plans)))
                                (lambda () (equal (car (gethash plan-id pitcrew-test--plans))
                                                  status)))
            (let ((source (current-buffer)))
              (with-current-buffer (pitcrew-show-plan plan-id)
                (pitcrew-test--wait (lambda () (format "the plan buffer of %s to say %s:\n%s"
                                                       plan-id status (buffer-string)))
                                    (lambda ()
                                      (save-excursion
                                        (goto-char (point-min))
                                        (search-forward (format "Status: %s" status) nil t)))))
              (pop-to-buffer-same-window source))))
        (pitcrew-test--log "%d questions told and answered; no prompt" (length plan-ids))))
    (set-buffer-modified-p nil)
    (eglot-shutdown pitcrew-test--server)))

(condition-case err
    (progn
      (if (equal (plist-get pitcrew-test--spec :scenario) "questions")
          (pitcrew-test--questions)
        (pitcrew-test--run))
      (message "PASS")
      (kill-emacs 0))
  (error (pitcrew-test--fail "%s" (error-message-string err))))

;;; delegate.el ends here
